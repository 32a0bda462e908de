"""Plain records shared by the service, the store and the backends.

`JobSpec` is what a backend is given, `Job` what the store keeps and the API
shows, `Observation` what a backend reports back. The API's JSON shapes are
the models in `api_models`, built from these."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spawner.projects import Project
from spawner.resources import Resources
from spawner.templates import template_from_dict
from spawner.volumes import Volume
from spawner.workspace import WorkspaceRequest


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


# every framework lavahub knows; each backend declares the ones it runs (`Capabilities`)
FRAMEWORKS = ("python", "pytorch", "mpi", "ray")


@dataclass(frozen=True)
class JobSpec:
    """A validated submission: everything a backend needs to run the job."""

    id: str
    name: str
    user: str
    project: str
    template: str
    template_version: int
    image: str
    framework: str
    workers: int
    resources: Resources  # per worker
    timeout: int
    env: dict[str, str]  # the template's env and the job's own; the contract's names come on top
    code: str
    cwd: str  # where every worker starts: the notebook's directory, as workers see it
    job_dir: str  # on the personal volume, as workers see it: code, exports, result
    volumes: tuple[Volume, ...] = ()  # the caller's personal, project and global volumes
    exports: bytes | None = None
    result: str | None = None
    queue: str = "default"
    gpu_type: str | None = None
    # one worker as a workspace request: the template and project a cluster backend places it by
    # (GPU resource, node selector, tolerations, node pool), through the spawner's own plan
    request: WorkspaceRequest | None = None
    min_workers: int | None = None  # elastic: the gang starts with this many, up to `workers`

    @property
    def total(self) -> Resources:
        return self.resources * self.workers

    @property
    def gang(self) -> int:
        """How many workers must start together: all of them, or an elastic job's minimum."""
        return self.min_workers or self.workers

    def record(self) -> dict[str, Any]:
        """What the store keeps of the spec besides its columns, to rebuild it for `submit`."""
        record: dict[str, Any] = {
            "image": self.image,
            "env": self.env,
            "cwd": self.cwd,
            "volumes": [v.to_dict() for v in self.volumes],
            "gpu_type": self.gpu_type,
            "min_workers": self.min_workers,
        }
        if self.request is not None:
            r = self.request
            record["request"] = {
                "admin": r.admin,
                "template": {**r.template.to_dict(), "version": r.template.version},
                "node_pool": r.project.node_pool,
            }
        return record

    @classmethod
    def restore(cls, job: Job, record: dict[str, Any], code: str, exports: bytes | None) -> JobSpec:
        """The spec of a stored job, from its row, `record()` and its payload."""
        return cls(
            id=job.id,
            name=job.name,
            user=job.user,
            project=job.project,
            template=job.template,
            template_version=job.template_version or 0,
            image=record["image"],
            framework=job.framework,
            workers=job.workers,
            resources=job.resources,
            timeout=job.timeout,
            env=dict(record["env"]),
            code=code,
            cwd=record["cwd"],
            job_dir=job.job_dir,
            volumes=tuple(Volume(**v) for v in record.get("volumes", [])),
            exports=exports,
            result=job.result,
            queue=job.queue,
            gpu_type=record.get("gpu_type"),
            request=_request(job, record),
            min_workers=record.get("min_workers"),
        )


def _request(job: Job, record: dict[str, Any]) -> WorkspaceRequest | None:
    """The per-worker request of a stored spec (None for jobs stored before it was kept)."""
    saved = record.get("request")
    if not saved:
        return None
    template = dict(saved["template"])
    version = template.pop("version", 0)
    return WorkspaceRequest(
        user=job.user,
        admin=bool(saved.get("admin")),
        project=Project(job.project, queue=job.queue, node_pool=saved.get("node_pool")),
        template=template_from_dict(template).with_version(version),
        resources=job.resources,
        gpu_type=record.get("gpu_type"),
    )


@dataclass
class Job:
    """A job as stored and shown: its spec's public part plus its life so far."""

    id: str
    name: str
    user: str
    project: str
    template: str
    framework: str
    workers: int
    resources: Resources
    state: JobState
    created: datetime
    timeout: int
    job_dir: str
    reason: str | None = None
    started: datetime | None = None
    finished: datetime | None = None
    exit_code: int | None = None
    template_version: int | None = None
    queue: str = "default"
    result: str | None = None
    submitted: bool = False  # the backend accepted it
    log_complete: bool = False  # every line of its output is in the service's log
    failed_worker: int | None = None
    backend_state: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> Resources:
        return self.resources * self.workers


@dataclass(frozen=True)
class Observation:
    """What a backend sees of a job right now, already in lavahub's states.

    `backend_state`, when not None, replaces what the service keeps for the backend.
    """

    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    failed_worker: int | None = None
    backend_state: dict[str, Any] | None = None

"""Plain records shared by the service, the store and the backends."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spawner.resources import Resources


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


FRAMEWORKS = ("python", "pytorch", "ray")


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
    env: dict[str, str]
    code: str
    cwd: str
    job_dir: str  # on the personal volume: code, exports, worker logs, result
    exports: bytes | None = None
    result: str | None = None
    queue: str = "default"

    @property
    def total(self) -> Resources:
        return self.resources * self.workers


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
    submitted: bool = False  # the backend has accepted it
    log_complete: bool = False  # its workers' last log lines are copied
    failed_worker: int | None = None
    backend_state: dict[str, Any] = field(default_factory=dict)

    @property
    def total(self) -> Resources:
        return self.resources * self.workers

    def to_json(self) -> dict[str, Any]:
        iso = lambda t: t.isoformat() if t else None  # noqa: E731
        return {
            "id": self.id,
            "name": self.name,
            "user": self.user,
            "project": self.project,
            "template": self.template,
            "framework": self.framework,
            "workers": self.workers,
            "resources": self.resources.to_dict(),
            "state": self.state.value,
            "reason": self.reason,
            "created": iso(self.created),
            "started": iso(self.started),
            "finished": iso(self.finished),
            "exit_code": self.exit_code,
            "timeout": self.timeout,
        }


@dataclass(frozen=True)
class Observation:
    """What a backend sees of a job right now, already in lavahub's states."""

    state: JobState
    reason: str | None = None
    exit_code: int | None = None
    failed_worker: int | None = None

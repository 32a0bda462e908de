"""The jobs API's contract: one typed model per request and response body.

The service writes its JSON through these models, `openapi.py` generates the
document served at `api/openapi.json` from them, and the notebook client and the
lab extension are checked against (or generated from) that document. No other
module spells the job's JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from . import models

State = Literal["pending", "running", "succeeded", "failed", "cancelled"]
Framework = Literal["python", "pytorch", "mpi", "ray"]


class Submission(BaseModel):
    """The body of `POST jobs`: a cell and how to run it. Only `code` is required."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="The cell's Python source; every worker runs it as a script.")
    workers: int | None = Field(None, ge=1, description="Processes that run the cell together (a gang).")
    min_workers: int | None = Field(
        None,
        ge=1,
        description="Elastic jobs: the gang starts once this many workers can (up to `workers`); "
        "backends that run no elastic jobs refuse it.",
    )
    framework: Framework | None = Field(None, description="How the workers are wired together.")
    gpus: int | None = Field(None, ge=0, description="GPUs per worker (default: the template's).")
    cpus: float | None = Field(None, gt=0, description="CPUs per worker (default: the template's).")
    memory: str | int | None = Field(None, description="Memory per worker, such as 8Gi.")
    project: str | None = Field(None, description="The project it counts against (default: the first).")
    template: str | None = Field(None, description="The image template (default: the project's first).")
    name: str | None = Field(None, description="A label for the job.")
    timeout: int | None = Field(None, ge=1, description="Seconds it may run before it fails with `timeout`.")
    env: dict[str, str] | None = Field(None, description="Extra environment variables for every worker.")
    cwd: str | None = Field(None, description="The notebook's directory: where every worker starts.")
    exports: str | None = Field(
        None, description="Notebook variables for every worker: base64 of a cloudpickled dict."
    )
    result: str | None = Field(None, description="A variable of rank 0 to send back when it succeeds.")


class Resources(BaseModel):
    cpus: float = Field(description="CPUs per worker.")
    memory: str = Field(description="Memory per worker, such as 2Gi.")
    gpus: int = Field(description="GPUs per worker.")


class Job(BaseModel):
    """A job as the API shows it."""

    id: str = Field(description="The job's id: 16 hexadecimal digits.")
    name: str = Field(description="Its label (`--name`).")
    user: str = Field(description="Who submitted it; only they (and admins) see it.")
    project: str = Field(description="The project whose quota and queue it counts against.")
    template: str = Field(description="The image template its workers run.")
    framework: str = Field(description="How its workers are wired together.")
    workers: int = Field(description="How many workers run the cell together.")
    resources: Resources = Field(description="What each worker has.")
    state: State
    reason: str | None = Field(description="Why it is in this state (failed, cancelled), in words.")
    created: datetime = Field(description="When it was accepted.")
    started: datetime | None = Field(description="When all its workers were placed and started.")
    finished: datetime | None = Field(description="When it ended.")
    exit_code: int | None = Field(description="The failing worker's exit code, or 0.")
    timeout: int = Field(description="Seconds it may run before it fails with reason `timeout`.")

    @classmethod
    def of(cls, job: models.Job) -> Job:
        """The public part of a stored job: every field here is one of the record's."""
        public = {name: getattr(job, name) for name in cls.model_fields}
        public["resources"] = Resources.model_validate(job.resources.to_dict())
        return cls.model_validate(public)


class JobList(BaseModel):
    jobs: list[Job]


class Explanation(BaseModel):
    """Why a job is waiting, or why it failed, in plain words."""

    state: State
    summary: str
    details: list[str]
    suggestions: list[str]
    reason: str | None = Field(
        None,
        description="A pending job's kind of wait, where known: WaitingForQuota, NoNodeFits, "
        "GangIncomplete, QueueClosed, ImagePull, Starting.",
    )
    position: int | None = Field(
        None, ge=1, description="A pending job's place in the queue it waits in (1: next), where known."
    )


class Quota(BaseModel):
    """A project's ceiling on what its workspaces and jobs hold together; null: unlimited."""

    cpus: float | None = None
    memory: str | None = Field(None, description="Such as 64Gi.")
    gpus: int | None = None


class ProjectChoice(BaseModel):
    name: str
    quota: Quota


class TemplateChoice(BaseModel):
    """An image template a job may run, with its per-worker defaults and maxima."""

    slug: str
    display_name: str
    cpus: float
    memory: str
    gpus: int
    max_cpus: float
    max_memory: str
    max_gpus: int
    projects: list[str] = Field(description="The projects that may use it; empty: every project.")


class Options(BaseModel):
    """What the caller may ask of a job here: the choices and limits a submission form offers."""

    frameworks: list[Framework] = Field(description="What this platform's backend runs.")
    driver_frameworks: list[Framework] = Field(description="Frameworks whose jobs have exactly 1 worker.")
    max_workers: int
    elastic: bool = Field(description="Whether `min_workers` is accepted.")
    gpus: bool = Field(description="Whether the backend runs GPU jobs at all.")
    default_timeout: int
    max_timeout: int
    projects: list[ProjectChoice] = Field(description="The caller's projects, in the order of the default.")
    templates: list[TemplateChoice] = Field(description="The enabled templates of any of those projects.")


class Result(BaseModel):
    result: str = Field(description="Rank 0's `result` variable: base64 of its cloudpickle.")


class Error(BaseModel):
    """Every error: what went wrong, a hint what to do, and the request field at fault."""

    error: str
    hint: str | None = None
    field: str | None = None


class ServiceInfo(BaseModel):
    service: str
    api: str
    openapi: str


MODELS: tuple[type[BaseModel], ...] = (
    Submission,
    Resources,
    Job,
    JobList,
    Explanation,
    Quota,
    ProjectChoice,
    TemplateChoice,
    Options,
    Result,
    Error,
    ServiceInfo,
)

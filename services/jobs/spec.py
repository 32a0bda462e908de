"""A job submission -> a validated JobSpec. Every limit on a job is checked here.

Project membership, the template and the per-worker resources go through the
same `resolve_options` as a workspace, so a job can ask for exactly what a
workspace from that template could.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lavahub_jupyter.runtime.contract import is_reserved

from spawner.errors import PublicError
from spawner.holdings import first_short
from spawner.names import ENV_PATTERN
from spawner.options import resolve_options
from spawner.projects import Project
from spawner.resources import Quota, Resources, format_cpus, format_memory
from spawner.templates import Template
from spawner.volumes import Volume, by_kind

from .api_models import Submission
from .backends.base import Capabilities
from .models import FRAMEWORKS, JobSpec

BODY_KEYS = tuple(Submission.model_fields)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_EXPORTS_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Caller:
    """The authenticated user, as the hub describes them."""

    name: str
    admin: bool = False


def new_job_id() -> str:
    return secrets.token_hex(8)


def validate_submission(
    body: Any,
    *,
    caller: Caller,
    projects: Mapping[str, Project],
    templates: Sequence[Template],
    limits: Any,
    capabilities: Capabilities,
    capacity: Resources | None,
    volumes: Sequence[Volume],
    job_id: str,
    unfinished: int = 0,
) -> JobSpec:
    """Check a submission against the caller's projects, the template, quota and cluster.

    `projects` are the caller's projects; `limits` the config's `jobs` section;
    `capabilities` what the backend runs; `capacity` the cluster's total, if known;
    `volumes` the caller's volume plan (as workers see it) in the chosen project;
    `unfinished` how many pending or running jobs the caller has. Only a job that
    could never fit the project's quota is refused: one that fits, but not while
    the project's workspaces and jobs hold what they do, waits in the project's queue.
    """
    if not isinstance(body, Mapping):
        raise PublicError("The request body must be a JSON object.", hint=_keys_hint())
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise PublicError(f"Unknown field {unknown[0]!r}.", hint=_keys_hint(), field=unknown[0])
    if unfinished >= limits.max_unfinished_per_user:
        raise PublicError(
            f"You have {unfinished} unfinished jobs; at most {limits.max_unfinished_per_user} may be "
            "pending or running at once (jobs.max_unfinished_per_user).",
            hint="wait for some to end, or cancel those you no longer need (lavahub jobs cancel ID)",
        )

    code = body.get("code")
    if not isinstance(code, str) or not code.strip():
        raise PublicError("code is required: the cell's Python source.", field="code")
    if len(code.encode()) > limits.max_code_bytes:
        raise PublicError(
            f"The code is {len(code.encode())} bytes; jobs take at most {limits.max_code_bytes}.",
            hint="move large data into a file on your project volume and read it from the job",
            field="code",
        )

    framework = body.get("framework", "python")
    runs = capabilities.frameworks
    if framework not in runs:
        hint = (
            f"this platform's job backend does not run {framework} jobs" if framework in FRAMEWORKS else None
        )
        raise PublicError(
            f"framework must be one of {', '.join(runs)}, got {framework!r}.", hint=hint, field="framework"
        )
    workers = body.get("workers", 1)
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= limits.max_workers:
        raise PublicError(
            f"workers must be a whole number from 1 to {limits.max_workers}, got {workers!r}.",
            field="workers",
        )
    min_workers = body.get("min_workers")
    if min_workers is not None:
        if not capabilities.elastic:
            raise PublicError(
                "This platform's job backend runs no elastic jobs.",
                hint="give one number of workers (--workers N)",
                field="min_workers",
            )
        if (
            isinstance(min_workers, bool)
            or not isinstance(min_workers, int)
            or not 1 <= min_workers <= workers
        ):
            raise PublicError(
                f"min_workers must be a whole number from 1 to workers ({workers}), got {min_workers!r}.",
                field="min_workers",
            )
        if min_workers == workers:
            min_workers = None
    if framework in capabilities.driver_frameworks and workers != 1:
        raise PublicError(
            f"A {framework} job runs one driver that schedules its own tasks; workers must be 1.",
            hint=f"use {framework}'s own APIs inside the cell to fan out",
            field="workers",
        )

    options = {
        k: body[k] for k in ("project", "template", "gpus", "cpus", "memory") if body.get(k) is not None
    }
    request = resolve_options(
        options, user=caller.name, admin=caller.admin, projects=projects, templates=templates
    )
    per_worker = request.resources
    total = per_worker * workers
    if per_worker.gpus and not capabilities.gpus:
        raise PublicError(
            "This platform's job backend runs no GPU jobs.", hint="ask for no GPUs (--gpus 0)", field="gpus"
        )
    _check_never_fits(total, capacity)
    check_fits_quota(request.project.name, request.project.quota, total)

    name = body.get("name") or "cell"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise PublicError(
            f"name {name!r} is not valid: use letters, digits, '.', '_' and '-' (at most 63).", field="name"
        )
    timeout = body.get("timeout", limits.default_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= limits.max_timeout:
        raise PublicError(
            f"timeout must be a whole number of seconds from 1 to {limits.max_timeout}, got {timeout!r}.",
            field="timeout",
        )
    env = _env(body.get("env"))
    volumes = tuple(volumes)
    personal = by_kind(volumes)["personal"].mount_path
    cwd = _cwd(body.get("cwd"), volumes, personal)
    exports = _exports(body.get("exports"))
    result = body.get("result")
    if result is not None and (not isinstance(result, str) or not IDENTIFIER.fullmatch(result)):
        raise PublicError(f"result must be a Python variable name, got {result!r}.", field="result")

    return JobSpec(
        id=job_id,
        name=name,
        user=caller.name,
        project=request.project.name,
        template=request.template.slug,
        template_version=request.template.version,
        image=request.template.image,
        framework=framework,
        workers=workers,
        resources=per_worker,
        timeout=timeout,
        env={**request.template.env, **env},
        code=code,
        cwd=cwd,
        job_dir=posixpath.join(personal, ".lavahub", "jobs", job_id),
        volumes=volumes,
        exports=exports,
        result=result,
        queue=request.project.queue,
        gpu_type=request.gpu_type,
        request=request,
        min_workers=min_workers,
    )


def _keys_hint() -> str:
    return f"known fields: {', '.join(BODY_KEYS)}"


def _check_never_fits(total: Resources, capacity: Resources | None) -> None:
    """Refuse at once what the whole cluster could never hold, instead of pending forever."""
    if capacity is None:
        return
    if total.gpus > capacity.gpus:
        have = "has no GPUs" if capacity.gpus == 0 else f"has {capacity.gpus} GPUs in all"
        raise PublicError(
            f"This job asks for {total.gpus} GPUs, and the cluster {have}: it could never start.",
            hint="ask for fewer GPUs (or none)",
            field="gpus",
        )
    if total.cpus > capacity.cpus:
        raise PublicError(
            f"This job asks for {format_cpus(total.cpus)} CPUs in all, and the cluster has "
            f"{format_cpus(capacity.cpus)}: it could never start.",
            hint="ask for fewer workers or fewer CPUs per worker",
            field="cpus",
        )
    if capacity.memory and total.memory > capacity.memory:
        raise PublicError(
            f"This job asks for {format_memory(total.memory)} memory in all, and the cluster has "
            f"{format_memory(capacity.memory)}: it could never start.",
            hint="ask for fewer workers or less memory per worker",
            field="memory",
        )


def check_fits_quota(project: str, quota: Quota, total: Resources) -> None:
    """Refuse a job larger than its project's whole quota: it could never start, whatever ends."""
    short = first_short(quota, Resources(), total)
    if short is not None:
        limit, what = short.amount(short.limit), short.resource
        raise PublicError(
            f"Project '{project}' has a quota of {limit} {what}, and this job asks for "
            f"{short.amount(short.asks)} in all: it could never start.",
            hint=f"ask for at most {limit} {what} in all (fewer workers or less per worker)",
            field=what.lower(),
        )


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PublicError("env must be an object of names to strings.", field="env")
    env = {}
    for key, val in value.items():
        if not isinstance(key, str) or not ENV_PATTERN.fullmatch(key):
            raise PublicError(f"env: {key!r} is not a valid variable name.", field="env")
        if is_reserved(key):
            raise PublicError(
                f"env: {key} is set by lavahub for every worker and cannot be overridden.", field="env"
            )
        if not isinstance(val, str):
            raise PublicError(f"env: the value of {key} must be a string.", field="env")
        env[key] = val
    return env


def _cwd(value: Any, volumes: Sequence[Volume], personal: str) -> str:
    """The notebook's working directory, if it lies inside one of the caller's volumes.

    Paths are compared as text, normalised, never looked up: they are where the
    workers see the volumes, which need not exist where the service runs.
    """
    if value in (None, ""):
        return personal
    if not isinstance(value, str) or "\0" in value or not value.startswith("/"):
        raise PublicError("cwd must be an absolute path.", field="cwd")
    path = posixpath.normpath(value)
    for volume in volumes:
        root = posixpath.normpath(volume.mount_path)
        if path == root or path.startswith(root.rstrip("/") + "/"):
            return path
    raise PublicError(
        f"cwd {value} is outside your personal, project and global directories.",
        hint="run the cell from a notebook inside your workspace's directories",
        field="cwd",
    )


def _exports(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PublicError("exports must be base64 text.", field="exports")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PublicError("exports is not valid base64.", field="exports") from None
    if len(data) > MAX_EXPORTS_BYTES:
        raise PublicError(
            f"The exported variables are {len(data)} bytes; at most {MAX_EXPORTS_BYTES} may be sent.",
            hint="save large data to your project volume and load it in the job",
            field="exports",
        )
    return data

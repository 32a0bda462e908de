"""The job-backend seam: what the jobs service asks of a cluster, and nothing more.

The service validates a submission, keeps the record, the logs and the quota;
a backend only runs jobs. It receives everything it needs in a `JobSpec` (code,
image, env, the volume plan, queue, per-worker resources, framework, timeout),
keeps whatever it must remember about a job in that job's opaque
`backend_state` (persisted by the service, like JupyterHub's `Spawner.get_state`),
and answers with observations, log lines and plain facts. Ray runs jobs on one
machine or a Ray cluster; Volcano on Kubernetes. The conformance suite in
`tests/backends/` holds every backend to this contract.

The contract, for every method that takes a job:

- a job the backend does not know (never submitted, or forgotten by a restarted
  cluster) is not an error: `cancel` does nothing, `status` reports it `failed`
  with a reason, `logs` returns no lines, `result` returns None;
- `cancel` is idempotent: cancelling an ended or already cancelled job does nothing;
- only `submit` may raise `BackendUnavailable` (the job stays pending and is
  submitted again later) or `JobRefused` (the job fails at once with its message);
  any other exception is a bug in the backend, which the supervisor logs and retries
  with a backoff, without delaying other jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import LoggingConfigurable

from spawner.resources import Resources

from ..models import Job, JobSpec, Observation

BackendState = dict[str, Any]


class BackendUnavailable(Exception):
    """The cluster cannot take the job right now, but may shortly: the job stays pending."""


class JobRefused(Exception):
    """The cluster will never run this job as specified; the message says why, in plain words."""


class ResultUnavailable(Exception):
    """A job left a result that is not handed back (too large, not a regular file); the message says why."""


@dataclass(frozen=True)
class Capabilities:
    """What a backend can run: the service refuses the rest at submission, with a reason."""

    frameworks: tuple[str, ...]
    gpus: bool = True
    elastic: bool = False  # gangs with a minimum and a maximum number of workers
    driver_frameworks: frozenset[str] = frozenset()  # run as one driver process: workers must be 1


@dataclass(frozen=True)
class Shortfall:
    """One resource a pending job lacks in one pool: it needs `need`, `free` of `total` are free."""

    resource: str  # "GPUs", "CPUs" or "memory"
    need: float
    free: float
    total: float


@dataclass(frozen=True)
class Diagnosis:
    """Why a pending job is not running yet, as facts; `explain` turns them into words.

    `waiting_for`: the backend itself is not ready (the cluster is starting, or
    cannot start: then the reason says why). `shortfalls`: what is missing, in
    the pool or queue named by `pool`. `position`: the job's place in its queue,
    where the backend knows it (the service itself counts the jobs ahead of it).
    `reason`: a code for the kind of wait (`WaitingForQuota`, `NoNodeFits`, `GangIncomplete`,
    `QueueClosed`, `ImagePull`, `Starting`), where the backend can tell. `holders`: how many
    jobs run in the pool; `per_node`: the shortfall is on the best single node, not the pool;
    `fits` of `gang`: how many of the workers that must start together would fit now.
    """

    waiting_for: str | None = None
    pool: str | None = None
    shortfalls: tuple[Shortfall, ...] = ()
    position: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    reason: str | None = None
    holders: int | None = None
    per_node: bool = False
    fits: int | None = None
    gang: int | None = None


def shortfalls(need: Resources, used: Resources, total: Resources) -> tuple[Shortfall, ...]:
    """What `need` lacks in a pool where `used` of `total` is taken (GPUs, CPUs, memory)."""
    free = Resources(total.cpus - used.cpus, total.memory - used.memory, total.gpus - used.gpus)
    short = []
    if need.gpus > free.gpus:
        short.append(Shortfall("GPUs", need.gpus, free.gpus, total.gpus))
    if need.cpus > free.cpus:
        short.append(Shortfall("CPUs", need.cpus, free.cpus, total.cpus))
    if need.memory > free.memory:
        short.append(Shortfall("memory", need.memory, free.memory, total.memory))
    return tuple(short)


JobSource = Callable[[], Sequence[Job]]


class Backend(LoggingConfigurable):
    """Runs jobs somewhere. The service calls these and never looks inside a backend."""

    capabilities = Capabilities(frameworks=("python", "pytorch", "ray"))
    watch_interval = 0.5  # seconds between two polls of the default `watch`
    final_grace = 1.0  # seconds after a job ends during which its last lines may still arrive

    async def setup(self) -> None:
        """Connect to (or start) the cluster. May return before the cluster is ready."""

    async def cleanup(self) -> None:
        """Release connections; running jobs keep running."""

    def stop_cluster(self) -> str:
        """`lavahub down`: stop what this backend started for the platform; what it did, in words."""
        return "nothing to stop: this job backend starts no cluster of its own"

    @property
    def ready(self) -> bool:
        """Whether `submit` can be called now (the supervisor waits otherwise)."""
        return True

    async def capacity(self) -> Resources | None:
        """The most the cluster could ever give one job, if known: what exceeds it is refused."""
        return None

    async def submit(self, spec: JobSpec) -> BackendState:
        """Start the job; return what this backend must remember about it.

        May raise `BackendUnavailable` or `JobRefused`. The job's gang starts whole
        or not at all.
        """
        raise NotImplementedError

    def may_have_output(self, job: Job) -> bool:
        """Whether `logs` may have lines for this submitted, pending job; False spares asking
        (a job waiting in the cluster's queue, no worker started). Unsure: True."""
        return True

    async def cancel(self, job: Job) -> None:
        """Stop every worker of the job. Idempotent; a job unknown to the cluster is a no-op."""
        raise NotImplementedError

    async def status(self, job: Job) -> Observation:
        """The job as the cluster sees it now, in lavahub's states."""
        raise NotImplementedError

    async def watch(self, jobs: JobSource) -> AsyncIterator[tuple[str, Observation]]:
        """Observations of the submitted, unfinished jobs that `jobs()` names, as they change.

        The default polls `status` every `watch_interval`, each job's call on its
        own: a call that hangs leaves that job unobserved until it returns, and one
        that fails is logged and tried again next round; neither delays the others.
        A backend with a watch API (Kubernetes) pushes instead.
        """
        asking: dict[str, asyncio.Task[Observation]] = {}
        try:
            while True:
                for job in jobs() if self.ready else ():  # a cluster that is away has nothing to say
                    if job.id not in asking:
                        asking[job.id] = asyncio.ensure_future(self.status(job))
                await asyncio.sleep(self.watch_interval)
                for job_id, task in list(asking.items()):
                    if not task.done():
                        continue
                    del asking[job_id]
                    if task.exception() is not None:
                        self.log.error(
                            "Observing job %s failed; trying again", job_id, exc_info=task.exception()
                        )
                        continue
                    yield job_id, task.result()
        finally:
            for task in asking.values():
                task.cancel()

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        """Lines produced since the last call, each prefixed `[worker-N] ` (or `[launcher] `).

        The backend keeps its own cursor (across service restarts too), so every
        line is handed over once. `final`: the job has ended, so a last line
        without a newline counts too, and the cursor may be dropped.
        """
        raise NotImplementedError

    async def result(self, job: Job) -> bytes | None:
        """Rank 0's result (cloudpickle bytes) of a job that succeeded, if it sent one.

        Read with a cap and never on the event loop; may raise `ResultUnavailable`.
        """
        return None

    async def diagnose(self, job: Job) -> Diagnosis:
        """Facts about why a pending job is not running yet."""
        return Diagnosis()

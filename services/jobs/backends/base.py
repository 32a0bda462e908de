"""The interface every job backend implements (Ray now, Volcano next)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from traitlets.config import LoggingConfigurable

from spawner.resources import Resources

from ..models import Job, Observation


class BackendUnavailable(Exception):
    """The cluster cannot take the job right now, but may shortly: the job stays pending."""


@dataclass(frozen=True)
class ClusterUsage:
    used: Resources
    total: Resources


class Backend(LoggingConfigurable):
    """Runs jobs somewhere. The service calls these; it never looks inside a backend."""

    async def setup(self) -> None:
        """Connect to (or start) the cluster. May return before the cluster is ready."""

    async def cleanup(self) -> None:
        """Release connections; running jobs keep running."""

    @property
    def ready(self) -> bool:
        """Whether jobs can be submitted now."""
        return True

    @property
    def waiting_for(self) -> str | None:
        """While not ready: what the backend is waiting for, in plain words."""
        return None

    @property
    def expected_capacity(self) -> Resources | None:
        """The cluster's size before it answers, if the backend knows it (to refuse what never fits)."""
        return None

    async def usage(self) -> ClusterUsage | None:
        """What the cluster has in total and in use, if the backend can tell."""
        return None

    async def submit(self, job: Job) -> None:
        """Start a job whose directory (code, spec.json, exports) is already written."""
        raise NotImplementedError

    async def cancel(self, job: Job) -> None:
        raise NotImplementedError

    async def status(self, job: Job) -> Observation:
        raise NotImplementedError

    async def logs(self, job: Job, state_dir: Path, *, final: bool = False) -> list[str]:
        """Lines produced since the last call, prefixed `[worker-N] `; `state_dir` keeps the position.

        `final`: the job has ended, so a last line without a newline counts too.
        """
        raise NotImplementedError

"""A job's output as the service keeps it: one file per job, followers woken per line.

Backends hand new lines over already prefixed (`[worker-1] ...`); this copy
outlives the workers, the cluster and service restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path


class JobLog:
    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = ""
        if path.exists():
            with path.open(errors="replace", newline="") as f:  # newline="": keep "\r" inside lines
                text = f.read()
        self._lines: list[str] = text.split("\n")[:-1]  # "\n"-terminated lines, "\r" kept inside
        self._changed = asyncio.Event()
        self.complete = False

    def __len__(self) -> int:
        return len(self._lines)

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        with self.path.open("a") as f:
            f.write("".join(line + "\n" for line in lines))
        self._lines.extend(lines)
        self._wake()

    def finish(self) -> None:
        """No more lines will come: followers end once they have read everything."""
        self.complete = True
        self._wake()

    def read(self, since: int = 0) -> list[str]:
        return self._lines[max(since, 0) :]

    def tail(self, prefix: str, count: int) -> list[str]:
        return [line for line in self._lines if line.startswith(prefix)][-count:]

    async def wait(self, seen: int, timeout: float) -> None:
        """Return when there are lines past `seen`, the log is complete, or `timeout` passes."""
        if len(self._lines) > seen or self.complete:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class JobLogs:
    """The open logs of this service, one per job, under `<root>/<job id>/output.log`."""

    def __init__(self, root: Path):
        self.root = root
        self._open: dict[str, JobLog] = {}

    def __getitem__(self, job_id: str) -> JobLog:
        if job_id not in self._open:
            self._open[job_id] = JobLog(self.root / job_id / "output.log")
        return self._open[job_id]

    def state_dir(self, job_id: str) -> Path:
        path = self.root / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

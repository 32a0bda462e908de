"""A job's output as the service keeps it: one capped file per job, served from file offsets.

Backends hand new lines over already prefixed (`[worker-1] ...`); this copy
outlives the workers, the cluster and service restarts. Nothing of a log is kept
in memory but its size, its line count and one mark (line number, offset) every
`MARK_BYTES` of file: a read seeks to the mark before the line asked for. A line
longer than `max_line_bytes` is cut, with a marker; past `max_bytes` one line
says the log was truncated and the rest is discarded (the job keeps running).
"""

from __future__ import annotations

import asyncio
import bisect
import os
from pathlib import Path
from typing import BinaryIO

from spawner.resources import format_memory

from .waiting import within

MARK_BYTES = 64 * 2**10  # one (line, offset) mark per this much of the file
READ_BYTES = 2**20  # the most one `read` returns (but always at least one line)
TAIL_BYTES = 4 * 2**20  # how far back from the end `tail` looks
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_MAX_LINE_BYTES = 64 * 2**10
TRUNCATED = "[lavahub] log truncated: this job wrote more than {limit}; the rest is not kept"
CUT = " [lavahub] line cut: longer than {limit} bytes"


def cut_line(line: str, limit: int) -> bytes:
    """The line's bytes, or if it is longer than `limit`, its start and a marker: `limit` bytes in all."""
    data = line.replace("\n", "\\n").encode(errors="replace")
    if len(data) <= limit:
        return data
    marker = CUT.format(limit=limit).encode()
    return data[: max(limit - len(marker), 0)].decode(errors="ignore").encode() + marker


class JobLog:
    def __init__(
        self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ):
        self.path = path
        self.max_bytes, self.max_line_bytes = max_bytes, max_line_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._count = 0  # "\n"-terminated lines in the file ("\r" stays inside a line)
        self._size = 0
        self._marks: list[tuple[int, int]] = [(0, 0)]  # (line number, offset where it starts)
        self.truncated = False
        self._changed = asyncio.Event()
        self.complete = False
        if path.exists():
            self._scan()

    def _scan(self) -> None:
        """Count the lines of an existing file and mark it; a partial last line (a crash) is dropped."""
        end = 0
        with self.path.open("rb") as f:
            while block := f.read(MARK_BYTES):
                start = self._size
                self._size += len(block)
                last = block.rfind(b"\n")
                if last >= 0:
                    self._count += block.count(b"\n")
                    end = start + last + 1
                    self._mark(self._count, end)
        if end < self._size:
            os.truncate(self.path, end)
            self._size = end
        last_line = self.tail("", 1)
        self.truncated = bool(last_line) and last_line[0].startswith(TRUNCATED.split("{")[0])

    def _mark(self, line: int, offset: int) -> None:
        if offset - self._marks[-1][1] >= MARK_BYTES:
            self._marks.append((line, offset))

    def __len__(self) -> int:
        return self._count

    def append(self, lines: list[str]) -> None:
        """Add lines (no newlines of their own), cut and capped; followers are woken."""
        if not lines or self.truncated:
            return
        out = []
        for line in lines:
            data = cut_line(line, self.max_line_bytes) + b"\n"
            if self._size + len(data) > self.max_bytes:
                data = TRUNCATED.format(limit=_amount(self.max_bytes)).encode() + b"\n"
                self.truncated = True
            self._mark(self._count, self._size)
            out.append(data)
            self._size += len(data)
            self._count += 1
            if self.truncated:
                break
        with self.path.open("ab") as f:
            f.write(b"".join(out))
        self._wake()

    def finish(self) -> None:
        """No more lines will come: followers end once they have read everything."""
        self.complete = True
        self._wake()

    def read(self, since: int = 0, limit: int = READ_BYTES) -> list[str]:
        """Lines from number `since` on: about `limit` bytes of them at most, at least one."""
        since = max(since, 0)
        if since >= self._count:
            return []
        line, offset = self._marks[bisect.bisect_right(self._marks, since, key=lambda mark: mark[0]) - 1]
        with self.path.open("rb") as f:
            f.seek(offset)
            offset += _skip_lines(f, since - line)
            f.seek(offset)
            data = f.read(max(limit, self.max_line_bytes + 1))
            while b"\n" not in data and offset + len(data) < self._size:  # a line longer than the cap
                data += f.read(MARK_BYTES)
        end = data.rfind(b"\n") + 1
        return data[:end].decode(errors="replace").split("\n")[:-1]

    def tail(self, prefix: str, count: int) -> list[str]:
        """The last `count` lines that start with `prefix`, among the last `TAIL_BYTES` of the log."""
        if self._size == 0:
            return []
        start = max(self._size - TAIL_BYTES, 0)
        with self.path.open("rb") as f:
            f.seek(start)
            data = f.read(self._size - start)
        if start > 0:
            data = data[data.find(b"\n") + 1 :]  # the first line may be cut
        lines = data.decode(errors="replace").split("\n")[:-1]
        return [line for line in lines if line.startswith(prefix)][-count:]

    async def wait(self, seen: int, timeout: float) -> None:
        """Return when there are lines past `seen`, the log is complete, or `timeout` passes."""
        if self._count > seen or self.complete:
            return
        await within(self._changed.wait(), timeout)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


def _skip_lines(f: BinaryIO, lines: int) -> int:
    """Read past `lines` newlines from the file's position; how many bytes that was."""
    skipped = 0
    while lines > 0:
        block = f.read(MARK_BYTES)
        if not block:
            break
        found = block.count(b"\n")
        if found < lines:
            lines -= found
            skipped += len(block)
            continue
        at = -1
        for _ in range(lines):
            at = block.index(b"\n", at + 1)
        return skipped + at + 1
    return skipped


def _amount(nbytes: int) -> str:
    text = format_memory(nbytes)
    return f"{text} bytes" if text.isdigit() else text + "B"


class JobLogs:
    """The open logs of this service, one per job, under `<root>/<job id>/output.log`."""

    def __init__(
        self, root: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ):
        self.root = root
        self.max_bytes, self.max_line_bytes = max_bytes, max_line_bytes
        self._open: dict[str, JobLog] = {}

    def __getitem__(self, job_id: str) -> JobLog:
        if job_id not in self._open:
            self._open[job_id] = JobLog(
                self.root / job_id / "output.log",
                max_bytes=self.max_bytes,
                max_line_bytes=self.max_line_bytes,
            )
        return self._open[job_id]

    def state_dir(self, job_id: str) -> Path:
        path = self.root / job_id
        path.mkdir(parents=True, exist_ok=True)
        return path

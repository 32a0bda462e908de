"""Follow the per-worker log files in a job directory, resuming after a restart.

The files are the job's: each is read through `untrusted` (no links, regular
files only, never blocking), at most `TICK_BYTES` a call, and only the names
this job's workers write (`launcher.log`, `worker-0.log` ... `worker-<N-1>.log`).
A file that is not a regular file is skipped for good, said once in the log.
A last line without a newline is kept here as a fragment, not read again; one
longer than `max_line_bytes` is handed over at that length (the service cuts it
with a marker) and the rest of that line is skipped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..untrusted import Untrusted, read_at

TICK_BYTES = 2**20  # the most read of one file in one call: a flood is copied at a bounded rate
FINAL_BYTES = 16 * 2**20  # the most read of one file in the last call of an ended job
REFUSED = -1  # a file's position once it was found not to be a regular file


@dataclass
class _File:
    position: int  # read up to here
    pending: bytes = b""  # the start of a line without its newline yet
    skipping: bool = False  # inside a line longer than the cap: skip to its newline


class LogTail:
    """New lines of `<logs>/launcher.log` and `<logs>/worker-N.log`, prefixed by their source.

    Byte offsets (where each file's next line starts) live in `positions`, the
    service's own file, so a restarted service continues where it was.
    `below`: a directory on the way that the job cannot replace (its volume).
    """

    def __init__(
        self, logs_dir: Path, positions: Path, *, workers: int, max_line_bytes: int, below: Path | None = None
    ):
        self.logs_dir, self.positions, self.below = logs_dir, positions, below
        self.max_line_bytes = max_line_bytes
        self.names = ["launcher.log", *(f"worker-{rank}.log" for rank in range(workers))]
        self._offsets = _load(positions)
        self._files: dict[str, _File] = {}

    def read(self, *, final: bool = False) -> list[str]:
        """New lines; with `final`, also a last line that has no newline yet."""
        before = dict(self._offsets)
        lines: list[str] = []
        for name in self.names:
            lines += self._read_file(name, final=final)
        if self._offsets != before:
            self.positions.write_text(json.dumps(self._offsets))
        return lines

    def _read_file(self, name: str, *, final: bool) -> list[str]:
        offset = self._offsets.get(name, 0)
        if offset == REFUSED:
            return []
        file = self._files.setdefault(name, _File(position=offset))
        prefix = f"[{name.removesuffix('.log')}] "
        lines: list[str] = []
        budget = FINAL_BYTES if final else TICK_BYTES
        while budget > 0:
            try:
                data, size = read_at(
                    self.logs_dir / name, file.position, min(budget, TICK_BYTES), below=self.below
                )
            except FileNotFoundError:
                break
            except Untrusted as e:
                self._offsets[name] = REFUSED
                return [*lines, f"[lavahub] logs/{name} is not read: {e}"]
            if size < file.position:  # the file was cut shorter: it starts over
                file = self._files[name] = _File(position=0)
                continue
            if not data:
                break
            budget -= len(data)
            file.position += len(data)
            lines += [prefix + line for line in self._split(file, data)]
        if final and file.pending:
            lines.append(prefix + file.pending.decode(errors="replace"))
            file.pending = b""
        self._offsets[name] = file.position - len(file.pending)
        return lines

    def _split(self, file: _File, data: bytes) -> list[str]:
        """The complete lines that `data` ends (each at most the cap and one byte)."""
        if file.skipping:
            newline = data.find(b"\n")
            if newline < 0:
                return []
            data, file.skipping = data[newline + 1 :], False
        # lines end at "\n" only: a "\r" (a progress bar) stays inside its line, as clients count
        pieces = (file.pending + data).split(b"\n")
        file.pending = pieces.pop()
        if len(file.pending) > self.max_line_bytes:
            pieces.append(file.pending)
            file.pending, file.skipping = b"", True
        return [piece[: self.max_line_bytes + 1].decode(errors="replace") for piece in pieces]


def _load(positions: Path) -> dict[str, int]:
    try:
        value = json.loads(positions.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, int)}

"""Follow the per-worker log files in a job directory, resuming after a restart."""

from __future__ import annotations

import json
import re
from pathlib import Path

WORKER_FILE = re.compile(r"^(worker-\d+|launcher)\.log$")


class LogTail:
    """New complete lines of `<logs>/worker-N.log` (and launcher.log), prefixed by their source.

    Byte offsets live in `positions` so a restarted service continues where it was.
    """

    def __init__(self, logs_dir: Path, positions: Path):
        self.logs_dir = logs_dir
        self.positions = positions
        self._offsets: dict[str, int] = json.loads(positions.read_text()) if positions.exists() else {}

    def read(self, *, final: bool = False) -> list[str]:
        """New lines; with `final`, also a last line that has no newline yet."""
        if not self.logs_dir.is_dir():
            return []
        lines: list[str] = []
        for path in sorted(self.logs_dir.iterdir(), key=_order):
            if not WORKER_FILE.match(path.name):
                continue
            offset = self._offsets.get(path.name, 0)
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            end = len(data) if final else data.rfind(b"\n") + 1
            if end <= 0:
                continue
            prefix = f"[{path.stem}] "
            # lines end at "\n" only: a "\r" (a progress bar) stays inside its line, as clients count
            text = data[:end].decode(errors="replace")
            pieces = text.split("\n")
            if pieces and pieces[-1] == "":
                pieces.pop()
            lines.extend(prefix + piece for piece in pieces)
            self._offsets[path.name] = offset + end
        if lines:
            self.positions.write_text(json.dumps(self._offsets))
        return lines


def _order(path: Path) -> tuple[int, str]:
    match = re.match(r"worker-(\d+)", path.name)
    return (int(match.group(1)) if match else -1, path.name)

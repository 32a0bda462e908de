"""What a job brings that is too large for a database row: its code and exported variables.

Kept in the service's own folder (`<data_dir>/jobs/<id>/`) from acceptance until
the backend has it, so a job accepted while the cluster starts, or before a
service restart, is submitted with exactly what was sent.
"""

from __future__ import annotations

import os
from pathlib import Path

CODE = "code.py"
EXPORTS = "exports.pkl"


class Payloads:
    def __init__(self, root: Path):
        self.root = root

    def save(self, job_id: str, code: str, exports: bytes | None) -> None:
        folder = self.root / job_id
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(folder / CODE, code.encode())
        if exports is not None:
            _write(folder / EXPORTS, exports)

    def load(self, job_id: str) -> tuple[str, bytes | None] | None:
        """The job's code and exports, or None if they were never saved here."""
        folder = self.root / job_id
        try:
            code = (folder / CODE).read_text()
        except FileNotFoundError:
            return None
        exports = folder / EXPORTS
        return code, exports.read_bytes() if exports.exists() else None


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    partial.replace(path)

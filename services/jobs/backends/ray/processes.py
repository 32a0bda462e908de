"""Stopping processes the way every part of the Ray backend does: SIGTERM, a grace, then SIGKILL."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import psutil


def stop_all(processes: Sequence[psutil.Process], grace: float) -> None:
    """Ask each process to stop, kill those still running after `grace` seconds, and reap ours."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=grace)

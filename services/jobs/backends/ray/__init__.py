"""The Ray backend: each job a Ray job whose launcher places the whole gang, then runs every worker.

Modules by the process they run in: `backend` in the jobs service, `launcher` in
Ray's job driver, `states` and `tail` are the service's readings of what those
write; the workers themselves run `lavahub_jupyter.runtime.bootstrap`. The
backend is imported lazily, so that the launcher starts without the service's imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SUBMISSION_PREFIX", "RayBackend"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import backend

        return getattr(backend, name)
    raise AttributeError(name)

"""The Ray backend: the dispatcher, one detached actor, places each job's gang and runs every worker.

Modules by the process they run in: `backend` and `tail` in the jobs service;
`bridge` in the service's own Ray driver process; `dispatcher` in its actor and
`gang` in the Ray workers it starts; `private` in a `framework: ray` job's worker.
The workers themselves run `lavahub_jupyter.runtime.bootstrap`. The backend is
imported lazily, so that Ray's processes load without the service's imports.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RayBackend"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import backend

        return getattr(backend, name)
    raise AttributeError(name)

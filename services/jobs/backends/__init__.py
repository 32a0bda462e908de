"""Job backends, one package or module each; the service only knows `backends.base.Backend`.

`jobs.backend` in the platform config names one of `BACKENDS`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .base import Backend

# name -> "module:class"; each class has `from_config(platform_config)`
BACKENDS = {
    "ray": "services.jobs.backends.ray.backend:RayBackend",
    "volcano": "services.jobs.backends.volcano.backend:VolcanoBackend",
}


def load_backend(config: Any) -> Backend:
    """The backend the config's `jobs.backend` names, built from its own config section."""
    module, _, cls = BACKENDS[config.jobs.backend].partition(":")
    backend: Backend = getattr(import_module(module), cls).from_config(config)
    return backend

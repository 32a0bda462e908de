"""lavahub inside a notebook: ``%load_ext lavahub_jupyter`` adds the ``%%job`` magic."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    from .magic import JobMagics

    ipython.register_magics(JobMagics)

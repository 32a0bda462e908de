"""lavahub inside a notebook and JupyterLab.

``%load_ext lavahub_jupyter`` adds the ``%%job`` magic; as a Jupyter server
extension it serves the Jobs panel's API (`server`), and its labextension is the
panel, the "Run Cell as Distributed Job" command and the GPU status item.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    from .magic import JobMagics

    ipython.register_magics(JobMagics)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "lavahub-jupyter"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "lavahub_jupyter"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from .server import setup_handlers

    setup_handlers(server_app.web_app)
    server_app.log.info("lavahub: the jobs API and GPU status are served under lavahub/")

"""Where lavahub's own files are: the hub config and the proxy program."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROXY_ENV = "LAVAHUB_PROXY_COMMAND"


def hub_config_file() -> Path:
    """jupyterhub_config.py of this checkout, else the copy a wheel installs."""
    for candidate in (
        REPO_ROOT / "jupyterhub_config.py",
        Path(sys.prefix) / "share/lavahub/jupyterhub_config.py",
    ):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("jupyterhub_config.py is missing from this installation")


def proxy_command() -> str | None:
    """configurable-http-proxy: $LAVAHUB_PROXY_COMMAND, the repo's node_modules, else PATH."""
    if os.environ.get(PROXY_ENV):
        return os.environ[PROXY_ENV]
    local = REPO_ROOT / "node_modules/.bin/configurable-http-proxy"
    if local.exists():
        return str(local)
    return shutil.which("configurable-http-proxy")

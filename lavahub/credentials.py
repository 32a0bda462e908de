"""Embedded-mode passwords: from the config, else generated once into `<data_dir>/credentials`."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml

from lavahub.config import PlatformConfig
from spawner.errors import ConfigError


@dataclass(frozen=True)
class Credentials:
    admin_password: str
    user_password: str


def ensure_credentials(config: PlatformConfig) -> tuple[Credentials, bool]:
    """The passwords to use, and whether they were generated just now (to print them once)."""
    path = config.credentials_file
    stored: dict[str, str] = {}
    created = False
    if not (config.admin_password and config.user_password):
        if path.exists():
            stored = _read(path)
        else:
            stored = {
                # JupyterHub's shared-password authenticator wants >= 32 characters for admins
                "admin_password": secrets.token_urlsafe(32),
                "user_password": secrets.token_urlsafe(12),
            }
            _write(path, stored)
            created = True
    return (
        Credentials(
            admin_password=config.admin_password or stored["admin_password"],
            user_password=config.user_password or stored["user_password"],
        ),
        created,
    )


def _read(path: Path) -> dict[str, str]:
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), str) for k in ("admin_password", "user_password")
    ):
        raise ConfigError(
            f"{path} is damaged: it needs admin_password and user_password",
            hint="delete it and start again to generate new passwords",
        )
    return data


def _write(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# lavahub embedded-mode passwords; generated on first start\n")
        yaml.safe_dump(data, f)

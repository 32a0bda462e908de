"""A real lavahub platform per test module: `lavahub up` -> jupyterhub + configurable-http-proxy.

Every test drives it over HTTP on loopback the way users and their scripts do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.paths import proxy_command
from tests.hubclient import HubClient, free_port, wait_for_hub

LAVAHUB = str(Path(sys.executable).with_name("lavahub"))
ADMIN_PASSWORD = "admin-password-for-the-tests-0123456789"
USER_PASSWORD = "user-password-for-tests"

PLATFORM = {
    "admins": ["admin"],
    "auth": {"admin_password": ADMIN_PASSWORD, "user_password": USER_PASSWORD},
    "projects": {
        "default": {"members": ["admin", "alice", "bob"], "quota": {"cpus": 3}},
        "vision": {"members": ["admin", "alice"], "quota": {"gpus": 1}},
    },
    "templates": [
        {"slug": "python", "display_name": "Python", "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
         "cpus": 1, "memory": "1Gi", "max_cpus": 2, "max_memory": "4Gi",
         "env": {"TEMPLATE_GREETING": "hello from python"}},
        {"slug": "pytorch", "display_name": "PyTorch", "image": "quay.io/jupyter/pytorch-notebook:2025-01-06",
         "max_gpus": 1, "projects": ["vision"]},
        {"slug": "retired", "image": "python:3.11", "enabled": False},
    ],
}  # fmt: skip


@dataclass
class Platform:
    url: str
    port: int
    data_dir: Path
    config_file: Path
    process: subprocess.Popen[str]
    log_file: Path

    def client(self, user: str) -> HubClient:
        password = ADMIN_PASSWORD if user == "admin" else USER_PASSWORD
        return HubClient(self.url, user, password)

    def log(self) -> str:
        return self.log_file.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_platform(directory: Path, platform: dict[str, Any]) -> Platform:
    if proxy_command() is None:
        pytest.fail("configurable-http-proxy is not installed: `make install` puts it in node_modules/")
    directory.mkdir(parents=True, exist_ok=True)
    config_file = directory / "lavahub.yaml"
    # a restart keeps its ports, as a real deployment's config does
    previous = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    ports = {key: previous.get(key) or free_port() for key in ("port", "hub_port", "proxy_api_port")}
    port = ports["port"]
    config = {**platform, "data_dir": str(directory / "data"), **ports}
    config_file.write_text(yaml.safe_dump(config))
    log_file = directory / "hub.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "LAVAHUB_"))}
    process = subprocess.Popen(
        [LAVAHUB, "up", "--config", str(config_file)],
        stdout=log_file.open("w"), stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    running = Platform(f"http://127.0.0.1:{port}", port, directory / "data", config_file, process, log_file)
    try:
        wait_for_hub(running.url, process, log_file)
    except (RuntimeError, TimeoutError) as e:
        running.stop()
        pytest.fail(str(e))
    return running


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("platform"), PLATFORM)
    yield running
    running.stop()


def workspace_process(user: str, server: str = "") -> tuple[int, dict[str, str]] | None:
    """The pid and environment of a user's running JupyterLab, read from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        ours = env.get("JUPYTERHUB_USER") == user and env.get("JUPYTERHUB_SERVER_NAME", "") == server
        if ours and "JUPYTERHUB_SERVICE_PREFIX" in env:
            return int(entry.name), env
    return None

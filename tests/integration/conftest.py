"""A real lavahub platform per test module: `lavahub up` -> jupyterhub + configurable-http-proxy.

Every test drives it over HTTP on loopback the way users and their scripts do.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from lavahub.config import RayConfig
from lavahub.paths import proxy_command
from services.jobs.backends.ray import RayBackend
from tests.conftest import passable
from tests.hubclient import HubClient, free_port, wait_for_hub

LAVAHUB = str(Path(sys.executable).with_name("lavahub"))
ADMIN_PASSWORD = "admin-password-for-the-tests-0123456789"
USER_PASSWORD = "user-password-for-tests"

PLATFORM: dict[str, Any] = {
    "admins": ["admin"],
    "auth": {"admin_password": ADMIN_PASSWORD, "user_password": USER_PASSWORD},
    "projects": {
        "default": {"members": ["admin", "alice", "bob"], "quota": {"cpus": 3}},
        "vision": {"members": ["admin", "alice"], "quota": {"gpus": 1}},
    },
    "jobs": {"enabled": False},  # workspace tests start no Ray; JOBS_PLATFORM turns jobs on
    "templates": [
        {"slug": "python", "display_name": "Python", "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
         "cpus": 1, "memory": "1Gi", "max_cpus": 2, "max_memory": "4Gi",
         "env": {"TEMPLATE_GREETING": "hello from python"}},
        {"slug": "pytorch", "display_name": "PyTorch", "image": "quay.io/jupyter/pytorch-notebook:2025-01-06",
         "max_gpus": 1, "projects": ["vision"]},
        {"slug": "retired", "image": "python:3.11", "enabled": False},
    ],
}  # fmt: skip


JOBS_PLATFORM = {**PLATFORM, "jobs": {"max_workers": 4}}


@dataclass
class Platform:
    url: str
    port: int
    data_dir: Path
    config_file: Path
    process: subprocess.Popen[str]
    log_file: Path
    # auth.type local: the passwords `lavahub up` printed (on a first start only)
    passwords: dict[str, str] = field(default_factory=dict)

    def client(self, user: str) -> HubClient:
        password = self.passwords.get(user) or (ADMIN_PASSWORD if user == "admin" else USER_PASSWORD)
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


@dataclass(frozen=True)
class RayCluster:
    address: str  # the dashboard's
    gcs_address: str  # where the jobs service's Ray driver joins it
    token: str


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory) -> Iterator[RayCluster]:
    """A local Ray head for one test module, started by the jobs service's own code (the real path).

    Platforms use it by address, as a deployment with an existing Ray cluster does;
    test_jobs_local_head.py covers a service starting its own head. One module at a
    time: two heads starting side by side on a 2-core machine time each other out.
    """
    backend = RayBackend(
        state_dir=str(tmp_path_factory.mktemp("ray")),
        settings=RayConfig(port=free_port(), dashboard_port=free_port(), object_store_memory=128 * 2**20),
    )
    try:
        asyncio.run(backend._connect())
        yield RayCluster(address=backend.dashboard_url, gcs_address=backend.gcs_address, token=backend.token)
    finally:
        backend.stop_local_head()  # also when it failed to start: nothing may be left running


def start_platform(
    directory: Path,
    platform: dict[str, Any],
    ray: RayCluster | None = None,
    env_extra: dict[str, str] | None = None,
) -> Platform:
    if proxy_command() is None:
        pytest.fail("configurable-http-proxy is not installed: `make install` puts it in node_modules/")
    directory.mkdir(parents=True, exist_ok=True)
    passable(directory)
    config_file = directory / "lavahub.yaml"
    # a restart keeps its ports, as a real deployment's config does
    previous = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
    ports = {key: previous.get(key) or free_port() for key in ("port", "hub_port", "proxy_api_port")}
    port = ports["port"]
    jobs = {**platform.get("jobs", {}), "port": previous.get("jobs", {}).get("port") or free_port()}
    if ray is not None:
        jobs["ray"] = {"address": ray.address, "gcs_address": ray.gcs_address}
    templates_service = {
        **platform.get("templates_service", {}),
        "port": previous.get("templates_service", {}).get("port") or free_port(),
    }
    config = {
        **platform, "data_dir": str(directory / "data"), **ports, "jobs": jobs,
        "templates_service": templates_service,
    }  # fmt: skip
    config_file.write_text(yaml.safe_dump(config))
    log_file = directory / "hub.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "LAVAHUB_", "RAY_"))}
    if ray is not None:
        env["RAY_AUTH_TOKEN"] = ray.token
    env.update(env_extra or {})
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
    running.passwords = printed_passwords(running.log())
    return running


def printed_passwords(log: str) -> dict[str, str]:
    """The users' own passwords (`auth.type: local`) as `lavahub up` shows them, once."""
    return dict(re.findall(r"^  password of (\S+): +(\S+)$", log, re.MULTILINE))


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    """The platform without jobs: hub, proxy and workspaces."""
    running = start_platform(tmp_path_factory.mktemp("platform"), PLATFORM)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def jobs_platform(tmp_path_factory, ray_cluster) -> Iterator[Platform]:
    """The platform with the jobs service, on this module's Ray cluster."""
    running = start_platform(tmp_path_factory.mktemp("platform"), JOBS_PLATFORM, ray_cluster)
    yield running
    running.stop()


def workspace_process(
    user: str, server: str = "", data_dir: Path | None = None
) -> tuple[int, dict[str, str]] | None:
    """The pid and environment of a user's running JupyterLab, read from /proc (of the platform
    whose data dir is `data_dir`, when given: other platforms on this machine have the same users)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
        ours = env.get("JUPYTERHUB_USER") == user and env.get("JUPYTERHUB_SERVER_NAME", "") == server
        if data_dir is not None and not env.get("JUPYTER_PATH", "").startswith(str(data_dir)):
            continue
        if ours and "JUPYTERHUB_SERVICE_PREFIX" in env:
            return int(entry.name), env
    return None


def running_workspace(
    user: str, server: str = "", data_dir: Path | None = None
) -> tuple[int, dict[str, str]]:
    """`workspace_process` of a workspace that must be running."""
    found = workspace_process(user, server, data_dir)
    assert found is not None, f"no JupyterLab of {user}/{server} is running"
    return found

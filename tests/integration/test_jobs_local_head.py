"""The embedded default: the jobs service starts its own Ray head, and finds it again after a crash."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from lavahub.config import RayConfig
from services.jobs.backends.ray import RayBackend
from tests.hubclient import free_port
from tests.integration.conftest import JOBS_PLATFORM, start_platform
from tests.integration.test_jobs import logs, wait_for

pytestmark = pytest.mark.integration

LAVAHUB = str(Path(sys.executable).with_name("lavahub"))


def jobs_service(hub_pid: int) -> psutil.Process:
    for child in psutil.Process(hub_pid).children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[1:3] == ["-m", "services.jobs"]:
                return child
        except psutil.NoSuchProcess:  # a zombie's parent reaped it meanwhile
            continue
    raise LookupError("the jobs service is not running")


def gone_or_zombie(process: psutil.Process, timeout: float = 10) -> None:
    """Wait for a killed process that is not our child: it stays a zombie until the hub reaps it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {process.pid} still runs {timeout} s after SIGKILL")


def test_service_starts_a_head_on_loopback_and_a_job_survives_a_service_crash(tmp_path):
    own_ray = {"ray": {"port": free_port(), "dashboard_port": free_port()}}
    platform = start_platform(tmp_path, {**JOBS_PLATFORM, "jobs": {**JOBS_PLATFORM["jobs"], **own_ray}})
    head = RayBackend(state_dir=str(platform.data_dir / "ray"), settings=RayConfig(**own_ray["ray"]))
    try:
        alice = platform.client("alice")
        code = "import time\nprint('before', flush=True)\ntime.sleep(25)\nprint('after', flush=True)\n"
        job = alice.jobs("POST", json={"code": code}).json()
        wait_for(alice, job["id"], {"running"}, timeout=240)
        deadline = time.monotonic() + 60
        while "[worker-0] before" not in logs(alice, job["id"]) and time.monotonic() < deadline:
            time.sleep(0.2)

        # the dashboard (jobs API) is on loopback and refuses requests without the token
        assert head.token and (platform.data_dir / "ray/token").stat().st_mode & 0o077 == 0
        import requests

        assert requests.get(f"{head.dashboard_url}/api/version", timeout=5).status_code == 401
        assert head.dashboard_url.startswith("http://127.0.0.1:")

        service = jobs_service(platform.process.pid)
        service.send_signal(signal.SIGKILL)
        gone_or_zombie(service)
        deadline = time.monotonic() + 90  # the hub polls its services every 30 s and restarts them
        while time.monotonic() < deadline:
            try:
                restarted = jobs_service(platform.process.pid)
                if alice.jobs("GET").status_code == 200:
                    break
            except (LookupError, requests.RequestException):
                pass
            time.sleep(1)
        assert restarted.pid != service.pid

        done = wait_for(alice, job["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
        assert done["state"] == "succeeded"
        lines = logs(alice, job["id"])
        assert lines.count("[worker-0] before") == 1 and lines.count("[worker-0] after") == 1
        assert "Using the Ray cluster at" in platform.log(), "the restarted service reuses the running head"
    finally:
        platform.stop()
        stopped = subprocess.run(
            [LAVAHUB, "down", "--config", str(platform.config_file)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        left = head.stop_local_head()  # whatever happened above, nothing of this head stays
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped the local Ray cluster"), stopped
    assert left == 0, "lavahub down stopped every process of the head"


def test_a_job_survives_the_hub_killed_mid_job(tmp_path):
    """kill -9 of the hub: its services stop with it (they would hold their ports), the job
    runs on in Ray, and after `lavahub up` again it ends succeeded with every line, once."""
    own_ray = {"ray": {"port": free_port(), "dashboard_port": free_port()}}
    config = {**JOBS_PLATFORM, "jobs": {**JOBS_PLATFORM["jobs"], **own_ray}}
    platform = start_platform(tmp_path, config)
    head = RayBackend(state_dir=str(platform.data_dir / "ray"), settings=RayConfig(**own_ray["ray"]))
    restarted = None
    try:
        alice = platform.client("alice")
        code = "import time\nfor i in range(30):\n    print('line', i, flush=True)\n    time.sleep(1)\n"
        job = alice.jobs("POST", json={"code": code}).json()
        wait_for(alice, job["id"], {"running"}, timeout=240)
        deadline = time.monotonic() + 60
        while "[worker-0] line 2" not in logs(alice, job["id"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        before = [line for line in logs(alice, job["id"]) if line.startswith("[worker-0] line")]
        services = [jobs_service(platform.process.pid)]

        platform.process.send_signal(signal.SIGKILL)
        platform.process.wait(timeout=10)
        for service in services:
            gone_or_zombie(service, timeout=15)  # stopped with the hub, not left holding its port

        restarted = start_platform(tmp_path, config)
        alice = restarted.client("alice")
        done = wait_for(alice, job["id"], {"succeeded", "failed", "cancelled"}, timeout=180)
        lines = [line for line in logs(alice, job["id"]) if line.startswith("[worker-0] line")]
        print(
            f"hub killed with {len(before)} lines written; after restart: {done['state']}, {len(lines)} lines"
        )
        assert done["state"] == "succeeded", logs(alice, job["id"])
        assert lines == [f"[worker-0] line {i}" for i in range(30)]  # none lost, none twice
    finally:
        for running in (restarted, platform):
            if running is not None:
                running.stop()
        subprocess.run(
            [LAVAHUB, "down", "--config", str(platform.config_file)], capture_output=True, timeout=60
        )
        head.stop_local_head()

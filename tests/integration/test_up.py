"""`lavahub up` as a new user meets it: generated shared passwords, loopback only, crash recovery."""

from __future__ import annotations

import os
import re
import signal
import stat
import time

import psutil
import pytest

from services.jobs.store import JobStore
from tests.hubclient import HubClient
from tests.integration.conftest import PLATFORM, running_workspace, start_platform
from tests.unit.test_db import OLD_JOBS, write_old_database

pytestmark = pytest.mark.integration

# shared passwords, none given: they are generated (auth.type local is test_local_auth.py's)
NO_PASSWORDS = {**PLATFORM, "auth": {"type": "shared"}}


def printed_passwords(log: str) -> dict[str, str]:
    return dict(re.findall(r"^  (admin|user) password: +(\S+)$", log, re.MULTILINE))


def test_first_start_generates_and_prints_passwords_once(tmp_path):
    first = start_platform(tmp_path, NO_PASSWORDS)
    try:
        passwords = printed_passwords(first.log())
        assert set(passwords) == {"admin", "user"}
        credentials = first.data_dir / "credentials"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        assert passwords["user"] in credentials.read_text()
        alice = HubClient(first.url, "alice", passwords["user"])
        assert alice.api("GET", "user").json()["name"] == "alice"
        admin = HubClient(first.url, "admin", passwords["admin"])
        assert admin.api("GET", "user").json()["admin"] is True
        with pytest.raises(PermissionError):
            HubClient(first.url, "admin", passwords["user"])  # admins need the admin password
        with pytest.raises(PermissionError):
            HubClient(first.url, "mallory", passwords["user"])  # not a member of any project
    finally:
        first.stop()

    second = start_platform(tmp_path, NO_PASSWORDS)
    try:
        assert printed_passwords(second.log()) == {}
        assert str(first.data_dir / "credentials") in second.log()
        HubClient(second.url, "alice", passwords["user"])
    finally:
        second.stop()


def test_up_upgrades_a_database_from_before_migrations_and_keeps_its_templates_and_jobs(tmp_path):
    database = tmp_path / "data" / "lavahub.sqlite"  # start_platform's data_dir
    write_old_database(database)
    running = start_platform(tmp_path, PLATFORM)
    try:
        assert "  database:       0001 -> 0004\n" in running.log()
        templates = {t["slug"]: t for t in running.client("admin").templates("GET").json()["templates"]}
        assert set(templates) == {"python", "pytorch", "retired"}
        assert templates["python"]["version"] == 2, "the stored version 1, then the config's seed"
    finally:
        running.stop()
    jobs = JobStore(f"sqlite:///{database}")
    kept = {job.id: job for job in jobs.list(limit=10)}
    assert set(kept) == set(OLD_JOBS)
    assert (kept["1" * 16].queue, kept["1" * 16].failed_worker, kept["1" * 16].submitted) == ("gpu", 1, True)


def test_everything_listens_on_loopback_only(platform):
    hub = psutil.Process(platform.process.pid)
    processes = [hub, *hub.children(recursive=True)]
    listening = [
        conn.laddr
        for process in processes
        for conn in process.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    ]
    assert listening, "the hub and the proxy listen somewhere"
    assert any(addr.port == platform.port for addr in listening)
    for addr in listening:
        assert addr.ip in ("127.0.0.1", "::1"), f"{addr} is not loopback"


def test_a_running_workspace_survives_a_hub_crash_and_keeps_its_quota_share(tmp_path):
    first = start_platform(tmp_path, PLATFORM)
    alice = first.client("alice")
    assert alice.spawn("", {"project": "default", "cpus": 2}).status_code in (201, 202)
    alice.wait_ready("")
    pid, _ = running_workspace("alice")
    first.process.send_signal(signal.SIGKILL)  # `lavahub up` execs jupyterhub: this is the hub
    first.process.wait(10)
    assert psutil.pid_exists(pid)

    second = start_platform(tmp_path, PLATFORM)
    try:
        alice = second.client("alice")
        alice.wait_ready("")
        bob = second.client("bob")
        refused = bob.spawn("", {"project": "default", "cpus": 2})
        assert refused.status_code == 400
        assert "2 are in use (alice 2)" in refused.json()["message"]
        alice.stop("")
        deadline = time.monotonic() + 10
        while psutil.pid_exists(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert bob.spawn("", {"project": "default", "cpus": 2}).status_code in (201, 202)
        bob.wait_ready("")
        bob.stop("")
    finally:
        second.stop()
        if psutil.pid_exists(pid):
            os.kill(pid, signal.SIGKILL)

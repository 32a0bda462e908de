"""Users kept apart by the machine itself: an OS account per user (the platform runs as root).

Alice's notebook, her terminal and her job each try to read what is not hers: bob's
personal directory, the platform's credentials, cookie secret and databases, and
the jobs service's environment (the Ray token, the service's hub token). Each is
refused by the kernel with a permission error, not by a check of lavahub's, and
the same code run by bob finds his own files.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.hubclient import HubClient
from tests.integration.conftest import JOBS_PLATFORM, Platform, RayCluster, start_platform
from tests.security.lab import run_cell, run_in_terminal

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="OS accounts per user need the platform to run as root"),
]

ACCOUNTS_PLATFORM = {**JOBS_PLATFORM, "auth": {"type": "local"}}  # the default: a password each


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, ray_cluster: RayCluster) -> Iterator[Platform]:
    running = start_platform(tmp_path_factory.mktemp("accounts"), ACCOUNTS_PLATFORM, ray_cluster)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def workspaces(platform: Platform) -> Iterator[tuple[HubClient, HubClient]]:
    alice, bob = platform.client("alice"), platform.client("bob")
    # alice's workspace in vision, so that default's quota (3 CPUs) holds bob's and her 2-worker job
    for client, project in ((alice, "vision"), (bob, "default")):
        response = client.spawn("", {"template": "python", "project": project})
        assert response.status_code in (201, 202), response.text
    for client in (alice, bob):
        client.wait_ready("")
    # bob keeps a file in his personal directory, written by his own JupyterLab
    put = bob.session.put(
        f"{bob.server_url()}api/contents/secret.txt",
        data=json.dumps({"type": "file", "format": "text", "content": "bob's"}),
        timeout=10,
    )
    assert put.status_code == 201, put.text
    yield alice, bob
    for client in (alice, bob):
        client.stop("")


def secrets_of(platform: Platform) -> dict[str, str]:
    """What alice must not read, by what it is."""
    data = platform.data_dir
    jobs_service = next(
        p for p in psutil.process_iter(["cmdline", "cwd"])
        if (p.info["cmdline"] or [])[-1:] == ["services.jobs"] and p.info["cwd"] == str(data)
    )  # fmt: skip
    targets = {
        "bob's home": data / "users/bob",
        "bob's file": data / "users/bob/secret.txt",
        "the cookie secret": data / "jupyterhub_cookie_secret",
        "the hub database": data / "jupyterhub.sqlite",
        "lavahub's database (password hashes)": data / "lavahub.sqlite",
        "the jobs service's environment (Ray and hub tokens)": Path(f"/proc/{jobs_service.pid}/environ"),
    }
    missing = [what for what, path in targets.items() if not path.exists()]
    assert not missing, f"the test expects these to exist: {missing}"
    return {what: str(path) for what, path in targets.items()}


PROBE = """
import json, os, pwd
tried = {}
for what, path in json.loads(%r).items():
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        tried[what] = "READ"
    except PermissionError:
        tried[what] = "denied"
    except OSError as e:
        tried[what] = type(e).__name__
print("PROBE", json.dumps({"me": pwd.getpwuid(os.getuid()).pw_name, "tried": tried,
      "env": sorted(k for k in os.environ if k.startswith(("RAY_", "LAVAHUB_CONFIG"))
                    or k == "JUPYTERHUB_API_TOKEN")}))
"""


def probe_result(text: str) -> dict:
    line = next(line for line in text.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


def test_alices_notebook_runs_as_her_account_and_is_refused_what_is_not_hers(platform, workspaces):
    alice, _ = workspaces
    targets = secrets_of(platform)
    result = probe_result(run_cell(alice, PROBE % json.dumps(targets)))
    print(f"notebook of alice: {result}")
    assert result["me"] == "lavahub-alice"
    assert result["tried"] == dict.fromkeys(targets, "denied")


def test_bobs_own_file_is_his(platform, workspaces):
    _, bob = workspaces
    assert "bob's" in run_cell(bob, "print(open('secret.txt').read())")


def test_whoami_in_alices_terminal_names_her_account(workspaces):
    alice, _ = workspaces
    shown = run_in_terminal(alice, 'echo "me=$(whoami)"; cat ~/../bob/secret.txt', until="Permission denied")
    assert "me=lavahub-alice" in shown
    assert "Permission denied" in shown and "bob's" not in shown


def test_alices_job_runs_as_her_account_with_no_platform_token(platform, workspaces):
    alice, _ = workspaces
    targets = secrets_of(platform)
    job = alice.jobs("POST", json={"code": PROBE % json.dumps(targets), "workers": 2, "project": "default"})
    job = job.json()
    deadline = time.monotonic() + 180
    while alice.jobs("GET", f"/{job['id']}").json()["state"] not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            explained = alice.jobs("GET", f"/{job['id']}/explain").text
            pytest.fail(f"the job did not end: {explained}")
        time.sleep(0.5)
    lines = alice.jobs("GET", f"/{job['id']}/logs").text
    results = [probe_result(line.split("] ", 1)[1]) for line in lines.splitlines() if "] PROBE " in line]
    print(f"workers of alice's job: {results}")
    assert len(results) == 2
    for result in results:
        assert result["me"] == "lavahub-alice"
        assert result["tried"] == dict.fromkeys(targets, "denied")
        assert result["env"] == []  # no RAY_*, no hub token, no LAVAHUB_CONFIG
    # every worker process ran as alice
    assert pwd.getpwnam("lavahub-alice").pw_uid != 0

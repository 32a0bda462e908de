"""The embedded platform end to end: real hub, real proxy, real JupyterLab processes."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat
import threading
import time
from pathlib import Path

import pytest

from spawner import cgroups
from spawner.gpus import inventory
from tests.integration.conftest import running_workspace, workspace_process

pytestmark = pytest.mark.integration


def test_workspace_from_a_template_opens_in_the_personal_directory(platform):
    alice = platform.client("alice")
    response = alice.spawn("", {"template": "python", "project": "vision", "cpus": 2})
    assert response.status_code in (201, 202), response.text
    alice.wait_ready("")
    try:
        # through the proxy: JupyterLab's root is alice's personal directory
        listing = alice.session.get(f"{alice.server_url()}api/contents", timeout=10).json()
        assert {item["name"] for item in listing["content"]} >= {"projects", "global"}
        project = alice.session.get(f"{alice.server_url()}api/contents/projects/vision", timeout=10)
        assert project.status_code == 200
        put = alice.session.put(
            f"{alice.server_url()}api/contents/projects/vision/shared.txt",
            data=json.dumps({"type": "file", "format": "text", "content": "for the team"}), timeout=10,
        )  # fmt: skip
        assert put.status_code == 201, put.text
        assert (platform.data_dir / "projects/vision/shared.txt").read_text() == "for the team"
        lab = alice.session.get(f"{alice.server_url()}lab", timeout=10)
        assert lab.status_code == 200 and "JupyterLab" in lab.text

        pid, env = running_workspace("alice", data_dir=platform.data_dir)
        personal = platform.data_dir / "users/alice"
        assert os.readlink(f"/proc/{pid}/cwd") == str(personal)
        if os.geteuid() != 0:  # one OS user for everyone, as the home page says
            assert os.stat(f"/proc/{pid}").st_uid == os.geteuid()
            return
        # as root, JupyterLab runs as alice's own OS account, in directories only she reaches
        account = pwd.getpwnam("lavahub-alice")
        assert os.stat(f"/proc/{pid}").st_uid == account.pw_uid
        assert (env["USER"], env["HOME"]) == ("lavahub-alice", str(personal))
        assert (personal.stat().st_uid, stat.S_IMODE(personal.stat().st_mode)) == (account.pw_uid, 0o700)
        shared = (platform.data_dir / "projects/vision/shared.txt").stat()
        assert (shared.st_uid, shared.st_gid) == (account.pw_uid, grp.getgrnam("lavahub-p-vision").gr_gid)
        # ... and in a cgroup holding it to its 2 CPUs and 1 GiB, where the machine has writable ones
        controllers = cgroups.this_machine()
        memory_c, cpu_c = controllers.get("memory"), controllers.get("cpu")
        if memory_c is not None and cpu_c is not None and memory_c.version == 1:
            groups = Path(f"/proc/{pid}/cgroup").read_text()
            assert "/lavahub/workspace-alice" in groups, groups
            memory = controllers.path(memory_c, "workspace-alice")
            assert int((memory / "memory.limit_in_bytes").read_text()) == 2**30
            cpu = controllers.path(cpu_c, "workspace-alice")
            assert int((cpu / "cpu.cfs_quota_us").read_text()) == 200_000
        assert env["LAVAHUB_PROJECT"] == "vision"
        assert env["LAVAHUB_TEMPLATE"] == "python"
        assert env["LAVAHUB_TEMPLATE_VERSION"] == "1"
        assert env["LAVAHUB_PERSONAL_DIR"] == str(personal)
        assert env["LAVAHUB_PROJECT_DIR"] == str(platform.data_dir / "projects/vision")
        assert env["LAVAHUB_GLOBAL_DIR"] == str(platform.data_dir / "global")
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["CPU_LIMIT"] == "2"
        assert env["TEMPLATE_GREETING"] == "hello from python"
        model = alice.api("GET", "users/alice").json()
        # the hub records what was started, defaults filled in (the templates service counts usage by it)
        assert model["servers"][""]["user_options"] == {
            "template": "python", "project": "vision", "cpus": 2.0, "gpus": 0, "memory": "1Gi",
        }  # fmt: skip
    finally:
        alice.stop("")
    assert workspace_process("alice", data_dir=platform.data_dir) is None


REFUSALS = [
    ({"template": "nope"}, "Unknown template 'nope'"),
    ({"template": "retired"}, "Template 'retired' is disabled"),
    (
        {"template": "pytorch", "project": "default"},
        "Template 'pytorch' is not available in project 'default'",
    ),
    ({"project": "vision"}, "bob is not a member of project 'vision'"),
    ({"template": "python", "gpus": 1}, "allows at most 0 GPUs"),
    ({"template": "python", "cpus": 64}, "allows at most 2 CPUs"),
    ({"image": "attacker/image"}, "Unknown workspace option 'image'"),
]


@pytest.mark.parametrize(("options", "message"), REFUSALS)
def test_refused_spawns_say_why_and_leave_nothing(platform, options, message):
    bob = platform.client("bob")
    response = bob.spawn("refused", options)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    # JupyterHub keeps the (stopped) named-server record, as for any failed spawn; nothing runs
    server = bob.api("GET", "users/bob?include_stopped_servers").json()["servers"]["refused"]
    assert not (server["ready"] or server["pending"])
    assert workspace_process("bob", "refused") is None
    # `up` made bob's (empty) personal directory with his account; the refused spawn added nothing
    assert list((platform.data_dir / "users/bob").iterdir()) == []
    bob.stop("refused", remove=True)
    assert "refused" not in bob.api("GET", "users/bob?include_stopped_servers").json()["servers"]


def test_gpus_on_a_machine_without_gpus_are_refused(platform):
    if inventory():
        pytest.skip("this machine has NVIDIA GPUs; the GPU tests run on the device machine")
    alice = platform.client("alice")
    response = alice.spawn("gpu", {"template": "pytorch", "project": "vision", "gpus": 1})
    assert response.status_code == 400
    assert (
        response.json()["message"] == "1 GPU asked for, but this machine has no NVIDIA GPU. (ask for 0 GPUs)"
    )
    alice.stop("gpu", remove=True)


def test_project_quota_counts_running_workspaces(platform):
    alice, bob = platform.client("alice"), platform.client("bob")
    assert alice.spawn("q", {"project": "default", "cpus": 2}).status_code in (201, 202)
    alice.wait_ready("q")
    try:
        refused = bob.spawn("", {"project": "default", "cpus": 2})
        assert refused.status_code == 400
        assert refused.json()["message"] == (
            "Project 'default' has a quota of 3 CPUs; 2 are in use (alice/q 2) and this workspace asks "
            "for 2. (ask for at most 1 CPUs, or stop a running workspace of the project)"
        )
    finally:
        alice.stop("q", remove=True)
    assert bob.spawn("", {"project": "default", "cpus": 2}).status_code in (201, 202)
    bob.wait_ready("")
    bob.stop("")


def test_users_cannot_reach_or_stop_each_others_workspaces(platform):
    alice, bob = platform.client("alice"), platform.client("bob")
    assert alice.spawn("private", {"project": "default"}).status_code in (201, 202)
    alice.wait_ready("private")
    try:
        assert bob.session.get(f"{alice.server_url('private')}api/contents", timeout=10).status_code == 403
        assert bob.api("GET", "users/alice").status_code == 404
        assert bob.api("DELETE", "users/alice/servers/private").status_code == 404
        assert bob.api("POST", "users/alice/servers/other", json={}).status_code == 404
        assert alice.session.get(f"{alice.server_url('private')}api/status", timeout=10).status_code == 200
    finally:
        alice.stop("private", remove=True)


def test_spawn_form_offers_only_the_users_projects_and_templates(platform):
    alice, bob = platform.client("alice"), platform.client("bob")
    alice_form = alice.page("hub/spawn").text
    assert 'value="vision"' in alice_form and 'value="default"' in alice_form
    assert 'value="pytorch"' in alice_form and 'value="retired"' not in alice_form
    bob_form = bob.page("hub/spawn").text
    assert 'value="vision"' not in bob_form and 'value="pytorch"' not in bob_form
    assert 'value="python"' in bob_form


def test_spawn_from_the_form(platform):
    alice = platform.client("alice")
    response = alice.submit_form(
        "hub/spawn/alice/fromform", {"project": "vision", "template": "python", "memory": "2Gi"}
    )
    assert response.status_code == 302, response.text
    alice.wait_ready("fromform")
    try:
        _, env = running_workspace("alice", "fromform")
        assert (env["LAVAHUB_PROJECT"], env["LAVAHUB_TEMPLATE"], env["LAVAHUB_MEMORY"]) == (
            "vision",
            "python",
            "2Gi",
        )
    finally:
        alice.stop("fromform", remove=True)


def test_form_refusal_is_shown_on_the_form(platform):
    alice = platform.client("alice")
    response = alice.submit_form("hub/spawn/alice/badform", {"project": "default", "template": "pytorch"})
    assert response.status_code == 400  # the form again, with the reason above it
    assert 'name="template"' in response.text
    assert "Template &#39;pytorch&#39; is not available in project &#39;default&#39;" in response.text
    alice.stop("badform", remove=True)


def test_spawn_progress_shows_lavahub_steps(platform):
    alice = platform.client("alice")
    events: list[dict] = []

    def follow() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not events:
            with alice.api("GET", "users/alice/servers/progress/progress", stream=True) as stream:
                if stream.status_code != 200:
                    time.sleep(0.05)
                    continue
                for line in stream.iter_lines():
                    if line.startswith(b"data:"):
                        events.append(json.loads(line[5:]))

    follower = threading.Thread(target=follow)
    follower.start()
    assert alice.spawn("progress", {"project": "vision", "template": "python"}).status_code in (201, 202)
    alice.wait_ready("progress")
    follower.join(60)
    alice.stop("progress", remove=True)
    messages = [e.get("message", "") for e in events]
    assert any("Checking template, project and resources" in m for m in messages), messages
    assert any("Preparing personal, project (vision) and global directories" in m for m in messages), messages
    assert events[-1].get("ready") is True

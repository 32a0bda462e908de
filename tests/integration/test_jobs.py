"""Cells as distributed jobs: the real jobs service on a real local Ray cluster."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import cloudpickle
import pytest
import requests
import yaml

from tests.hubclient import HubClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(jobs_platform):
    return jobs_platform


ALL_REDUCE = """
import time, torch, torch.distributed as dist
print("starting", flush=True)
time.sleep(2)
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"rank {dist.get_rank()} of {dist.get_world_size()} sum {t.item()}", flush=True)
dist.destroy_process_group()
"""


def wait_for(client: HubClient, job_id: str, states: set[str], timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.jobs("GET", f"/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not {states} after {timeout}s: {job}")


def logs(client: HubClient, job_id: str) -> list[str]:
    return client.jobs("GET", f"/{job_id}/logs").text.splitlines()


def job_processes(job_id: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and f"LAVAHUB_JOB_ID={job_id}".encode() in (entry / "environ").read_bytes()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_pytorch_all_reduce_streams_every_worker(platform):
    alice = platform.client("alice")
    submitted = alice.jobs(
        "POST", json={"code": ALL_REDUCE, "workers": 2, "framework": "pytorch", "name": "reduce"}
    )
    assert submitted.status_code == 201, submitted.text
    job = submitted.json()
    assert (job["user"], job["project"], job["template"], job["state"]) == (
        "alice",
        "default",
        "python",
        "pending",
    )
    assert job["resources"] == {"cpus": 1.0, "memory": "1Gi", "gpus": 0}

    seen_while_running = []
    with alice.jobs("GET", f"/{job['id']}/logs?follow=true", stream=True, timeout=180) as stream:
        assert stream.headers["Content-Type"].startswith("text/plain")
        lines = []
        for raw in stream.iter_lines():
            line = raw.decode()
            lines.append(line)
            if line.endswith("starting"):
                seen_while_running.append(alice.jobs("GET", f"/{job['id']}").json()["state"])
    assert "running" in seen_while_running, "log lines arrive while the job runs"
    assert "[worker-0] rank 0 of 2 sum 3.0" in lines
    assert "[worker-1] rank 1 of 2 sum 3.0" in lines
    done = alice.jobs("GET", f"/{job['id']}").json()
    assert (done["state"], done["exit_code"]) == ("succeeded", 0)
    assert done["started"] and done["finished"]
    # the code was a file in the personal volume's job directory, beside each worker's log
    job_dir = platform.data_dir / "users/alice/.lavahub/jobs" / job["id"]
    assert (job_dir / "code.py").read_text() == ALL_REDUCE
    assert (job_dir / "logs/worker-1.log").exists()
    # the service keeps its own copy of the logs
    assert logs(alice, job["id"]) == lines
    assert alice.jobs("GET", f"/{job['id']}/logs?since={len(lines) - 1}").text.splitlines() == lines[-1:]


def test_contract_environment_and_working_directory(platform):
    alice = platform.client("alice")
    code = (
        "import os\n"
        "keys = ['LAVAHUB_JOB_ID', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',\n"
        "        'CUDA_VISIBLE_DEVICES', 'TEMPLATE_GREETING', 'MY_SETTING']\n"
        "print({k: os.environ.get(k) for k in keys}, os.getcwd())\n"
    )
    cwd = platform.data_dir / "projects/vision/experiments"
    cwd.mkdir(parents=True, exist_ok=True)
    job = alice.jobs(
        "POST",
        json={"code": code, "workers": 2, "project": "vision", "cwd": str(cwd), "env": {"MY_SETTING": "on"}},
    ).json()
    done = wait_for(alice, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", logs(alice, job["id"])
    printed = {
        line.split("] ", 1)[0] + "]": line.split("] ", 1)[1] for line in logs(alice, job["id"]) if "{" in line
    }
    for rank in (0, 1):
        env_text, workdir = printed[f"[worker-{rank}]"].rsplit(" ", 1)
        env = eval(env_text)  # the dict the job printed
        assert env["LAVAHUB_JOB_ID"] == job["id"]
        assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == (str(rank), "2", str(rank))
        assert env["MASTER_ADDR"] and int(env["MASTER_PORT"]) > 0
        assert env["CUDA_VISIBLE_DEVICES"] == ""
        assert env["TEMPLATE_GREETING"] == "hello from python"
        assert env["MY_SETTING"] == "on"
        assert workdir == str(cwd)


RAY_CELL = """
import os, ray
ray.init()
@ray.remote
def square(x):
    return x * x
print("squares", sum(ray.get([square.remote(i) for i in range(5)])), flush=True)
print("cluster", ray.cluster_resources().get("CPU"), os.environ["RAY_ADDRESS"], flush=True)
print("token", "RAY_AUTH_TOKEN" in os.environ, flush=True)
"""


def test_a_ray_job_gets_a_ray_cluster_of_its_own(platform):
    """framework=ray: the cell's ray.init() joins a cluster the job starts inside its own bundle,
    never the platform's (which needs its token, and would let a job reach everyone's jobs)."""
    alice = platform.client("alice")
    job = alice.jobs("POST", json={"code": RAY_CELL, "framework": "ray", "cpus": 2}).json()
    done = wait_for(alice, job["id"], {"succeeded", "failed"}, timeout=240)
    lines = logs(alice, job["id"])
    assert done["state"] == "succeeded", lines
    said = {line.split("] ", 1)[1].split(" ", 1)[0]: line.split("] ", 1)[1] for line in lines if "] " in line}
    assert said["squares"] == "squares 30"
    _, cpus, address = said["cluster"].split()
    assert float(cpus) == 2.0  # the job's own bundle, not the platform cluster's CPUs
    assert address.startswith("127.0.0.1:") and address != platform_ray_address(platform)
    assert said["token"] == "token False"
    assert "[lavahub] this job's Ray cluster is up at" in "\n".join(lines)


def platform_ray_address(platform) -> str:
    return str(yaml.safe_load(platform.config_file.read_text())["jobs"]["ray"]["address"])


def test_failure_names_the_worker_and_its_last_lines(platform):
    alice = platform.client("alice")
    code = (
        "import os, sys, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    print('about to fail', flush=True)\n"
        "    sys.exit(3)\n"
        "time.sleep(30)\n"
    )
    job = alice.jobs("POST", json={"code": code, "workers": 2}).json()
    done = wait_for(alice, job["id"], {"succeeded", "failed"})
    assert (done["state"], done["exit_code"], done["reason"]) == ("failed", 3, "worker 1 exited with code 3")
    explained = alice.jobs("GET", f"/{job['id']}/explain").json()
    assert explained["summary"] == "The job failed: worker 1 exited with code 3."
    assert "[worker-1] about to fail" in explained["details"]
    deadline = time.monotonic() + 30
    while job_processes(job["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_processes(job["id"]) == [], "the other worker was stopped with the gang"


def test_cancel_stops_every_worker(platform):
    alice = platform.client("alice")
    code = "import time\nprint('working', flush=True)\ntime.sleep(600)\n"
    job = alice.jobs("POST", json={"code": code, "workers": 2}).json()
    wait_for(alice, job["id"], {"running"})
    deadline = time.monotonic() + 60
    while len(logs(alice, job["id"])) < 4 and time.monotonic() < deadline:  # 2 launcher + 2 worker lines
        time.sleep(0.2)
    assert len(job_processes(job["id"])) >= 2
    cancelled = alice.jobs("DELETE", f"/{job['id']}").json()
    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "cancelled by alice")
    deadline = time.monotonic() + 30
    while job_processes(job["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_processes(job["id"]) == []
    assert alice.jobs("GET", f"/{job['id']}").json()["state"] == "cancelled"


def test_timeout_fails_the_job(platform):
    alice = platform.client("alice")
    job = alice.jobs("POST", json={"code": "import time\ntime.sleep(600)\n", "timeout": 2}).json()
    done = wait_for(alice, job["id"], {"succeeded", "failed", "cancelled"})
    assert (done["state"], done["reason"]) == ("failed", "timeout")
    explained = alice.jobs("GET", f"/{job['id']}/explain").json()
    assert "raise --timeout (it was 2 s)" in explained["suggestions"][0]


def test_exports_and_result(platform):
    alice = platform.client("alice")
    exports = base64.b64encode(cloudpickle.dumps({"x": 41, "scale": lambda v: v * 2})).decode()
    job = alice.jobs(
        "POST", json={"code": "y = scale(x + 1) // 2\n", "exports": exports, "result": "y"}
    ).json()
    done = wait_for(alice, job["id"], {"succeeded", "failed"})
    assert done["state"] == "succeeded", logs(alice, job["id"])
    result = alice.jobs("GET", f"/{job['id']}/result").json()["result"]
    assert cloudpickle.loads(base64.b64decode(result)) == 42


def test_pending_job_is_explained(platform):
    alice, bob = platform.client("alice"), platform.client("bob")
    hog = alice.jobs("POST", json={"code": "import time\ntime.sleep(600)\n", "workers": 2}).json()
    try:
        wait_for(alice, hog["id"], {"running"})
        waiting = bob.jobs("POST", json={"code": "print('hi')\n"}).json()
        time.sleep(3)
        assert bob.jobs("GET", f"/{waiting['id']}").json()["state"] == "pending"
        explained = bob.jobs("GET", f"/{waiting['id']}/explain").json()
        assert explained["summary"].startswith(
            "The job is waiting: the cluster does not have enough free CPUs"
        )
        assert "CPUs: needs 1, 0 of 2 free." in explained["details"]
        # alice's job is counted, never named, in bob's explanation
        assert "1 job submitted earlier is still waiting or running." in explained["details"]
        assert not any(hog["id"] in line or "alice" in line for line in explained["details"])
        assert bob.jobs("DELETE", f"/{waiting['id']}").json()["state"] == "cancelled"
    finally:
        alice.jobs("DELETE", f"/{hog['id']}")


def test_a_job_that_could_never_fit_is_refused_at_once(platform):
    alice = platform.client("alice")
    response = alice.jobs(
        "POST", json={"code": "print(1)", "gpus": 1, "project": "vision", "template": "pytorch"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "This job asks for 1 GPUs, and the cluster has no GPUs: it could never start.",
        "hint": "ask for fewer GPUs (or none)",
        "field": "gpus",
    }


REFUSALS = [
    ({"code": "print(1)", "workers": 3}, "3 CPUs in all, and the cluster has 2", "cpus"),
    ({"code": "print(1)", "workers": 9}, "workers must be a whole number from 1 to 4", "workers"),
    ({"code": "print(1)", "project": "vision"}, "bob is not a member of project 'vision'", "project"),
    ({"code": "print(1)", "template": "pytorch"}, "not available in project 'default'", "template"),
    ({"code": "print(1)", "framework": "mpi"}, "framework must be one of python, pytorch, ray", "framework"),
    ({"code": "print(1)", "env": {"RANK": "5"}}, "RANK is set by lavahub", "env"),
    ({"code": "print(1)", "cwd": "/etc"}, "outside your personal, project and global directories", "cwd"),
    ({"code": "print(1)", "name": "bad name!"}, "name 'bad name!' is not valid", "name"),
    ({"code": "print(1)", "timeout": 0}, "timeout must be a whole number of seconds", "timeout"),
    ({"code": "print(1)", "image": "evil"}, "Unknown field 'image'", "image"),
    ({"code": ""}, "code is required", "code"),
    ({"code": "x" * (2**20 + 1)}, "jobs take at most 1048576", "code"),
]


@pytest.mark.parametrize(("body", "message", "field"), REFUSALS)
def test_refusals_are_json_with_the_field(platform, body, message, field):
    bob = platform.client("bob")
    before = bob.jobs("GET").json()["jobs"]
    response = bob.jobs("POST", json=body)
    assert response.status_code == 400
    error = response.json()
    assert message in error["error"]
    assert error.get("field") == field
    assert bob.jobs("GET").json()["jobs"] == before, "a refused job leaves no record"


def test_bad_json_and_unknown_routes(platform):
    bob = platform.client("bob")
    assert bob.jobs("POST", data="{not json").json() == {"error": "The request body is not JSON."}
    missing = bob.session.get(f"{platform.url}/services/jobs/api/nothing", timeout=10)
    assert missing.status_code == 404 and "openapi.json" in missing.json()["hint"]


def test_users_only_see_their_own_jobs_and_admins_see_all(platform):
    alice, bob, admin = platform.client("alice"), platform.client("bob"), platform.client("admin")
    job = alice.jobs("POST", json={"code": "print('mine')\n"}).json()
    for method, path in (
        ("GET", ""),
        ("DELETE", ""),
        ("GET", "/logs"),
        ("GET", "/explain"),
        ("GET", "/result"),
    ):
        response = bob.jobs(method, f"/{job['id']}{path}")
        assert response.status_code == 404, (method, path)
    assert job["id"] not in {j["id"] for j in bob.jobs("GET").json()["jobs"]}
    assert bob.jobs("GET", params={"all": "true"}).status_code == 403
    assert admin.jobs("GET", f"/{job['id']}").json()["user"] == "alice"
    assert job["id"] in {j["id"] for j in admin.jobs("GET", params={"all": "true"}).json()["jobs"]}
    wait_for(alice, job["id"], {"succeeded"})
    assert job["id"] in {j["id"] for j in alice.jobs("GET", params={"state": "succeeded"}).json()["jobs"]}
    assert job["id"] not in {j["id"] for j in alice.jobs("GET", params={"project": "vision"}).json()["jobs"]}


def test_tokens_need_the_service_scope(platform):
    alice = platform.client("alice")
    assert requests.get(f"{platform.url}/services/jobs/api/jobs", timeout=10).status_code == 401
    narrow = alice.api("POST", "users/alice/tokens", json={"scopes": ["read:users:activity!user=alice"]})
    assert narrow.status_code == 201, narrow.text
    narrow_token = {"Authorization": f"token {narrow.json()['token']}"}
    response = requests.get(f"{platform.url}/services/jobs/api/jobs", headers=narrow_token, timeout=10)
    assert response.status_code == 403
    assert response.json()["hint"] == "the token needs the scope access:services!service=jobs"


def test_openapi_describes_every_route(platform):
    spec = requests.get(f"{platform.url}/services/jobs/api/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/jobs", "/jobs/{id}", "/jobs/{id}/logs", "/jobs/{id}/explain", "/jobs/{id}/result", "/options"
    }  # fmt: skip
    json.dumps(spec)


def test_the_service_listens_on_loopback_only(platform):
    import psutil

    service = next(
        child
        for child in psutil.Process(platform.process.pid).children(recursive=True)
        if child.cmdline()[1:3] == ["-m", "services.jobs"]
    )
    listening = [c.laddr for c in service.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening), listening

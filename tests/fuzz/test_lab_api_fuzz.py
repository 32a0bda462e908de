"""The lab extension's server API fuzzed from its own OpenAPI document: no input gives a 5xx.

A real `jupyter server` process (JupyterHub's identity provider, the lavahub
extension) forwards to the real jobs application on loopback, with the scripted
cluster and test hub of `tests/extensions/jobs_service`; schemathesis reads
`lavahub/openapi.json` from that server and sends every operation generated
inputs, fitting the document and not, as alice in her browser.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode

from services.jobs.openapi import PATHS
from tests.extensions.jobs_service import JobsService, running
from tests.extensions.lab_server import ALICE_BROWSER, AUTHORIZER, IDENTITY, add_users, server_env
from tests.extensions.scripted_backend import Plan
from tests.fuzz.operations import MODES, fuzz, served
from tests.hubclient import free_port

AS_ALICE = {"Authorization": f"token {ALICE_BROWSER}"}
BASE = "/user/alice/"
OPERATIONS = [
    *((method.upper(), "/api" + path) for path, methods in PATHS.items() for method in methods),
    ("GET", "/gpus"),
    ("GET", "/workspace"),
]
EXAMPLES = 50  # per operation, generation mode and target


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsService]:
    with running(tmp_path_factory.mktemp("platform")) as started:
        add_users(started)
        yield started


@pytest.fixture(scope="module")
def lab_url(service: JobsService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """alice's notebook server, as `jupyterhub-singleuser` would run it, with the extension enabled."""
    root = tmp_path_factory.mktemp("alice")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "LAVAHUB_"))}
    env.update(server_env(service, BASE), JUPYTER_CONFIG_DIR=str(root / ".jupyter"))
    log = (root / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", f"--port={port}",
         "--ip=127.0.0.1", f"--ServerApp.base_url={BASE}", f"--ServerApp.root_dir={root}",
         f"--ServerApp.identity_provider_class={IDENTITY}", f"--ServerApp.authorizer_class={AUTHORIZER}",
         "--ServerApp.jpserver_extensions=lavahub_jupyter=True",
         # a browser sends the _xsrf cookie's token with every POST; these requests carry a token only
         "--ServerApp.disable_check_xsrf=True"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}{BASE}lavahub"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/workspace", headers=AS_ALICE, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the notebook server did not start:\n" + Path(log.name).read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def lab_api(lab_url: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{lab_url}/openapi.json", headers=AS_ALICE)
    assert schema.raw_schema["servers"] == [{"url": f"{BASE}lavahub"}]
    schema.config.update(base_url=lab_url, request_timeout=10)
    return schema


@pytest.fixture(scope="module")
def alices_jobs(service: JobsService, lab_url: str) -> list[str]:
    """Jobs of alice's that have ended each way, so operations on an id reach a real job too."""
    service.plans.extend(
        [Plan(lines=["[worker-0] hello"], result=42), Plan(outcome="failed", exit_code=3, failed_worker=0)]
    )
    submitted = [
        requests.post(f"{lab_url}/api/jobs", json=body, headers=AS_ALICE, timeout=10).json()["id"]
        for body in ({"code": "x = 42", "result": "x"}, {"code": "raise SystemExit(3)"})
    ]
    service.wait_for(lambda: all(job.state in ("succeeded", "failed") for job in service.jobs))
    return submitted


def test_every_operation_of_the_extension_is_fuzzed(lab_api: schemathesis.BaseSchema) -> None:
    assert served(lab_api) == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.parametrize("mode", MODES, ids=str)
def test_no_input_gives_a_server_error(
    lab_api: schemathesis.BaseSchema, alices_jobs: list[str], method: str, path: str, mode: GenerationMode
) -> None:
    fuzz(lab_api, method, path, mode, job_ids=alices_jobs, headers=AS_ALICE, examples=EXAMPLES)

"""The jobs API fuzzed from its own OpenAPI document: no input gives a 5xx.

The real jobs application (its handlers, store, logs and supervisor) runs on
loopback with a scripted cluster and a test hub (`tests/extensions/jobs_service`);
schemathesis reads `api/openapi.json` from the running service and sends every
operation inputs generated from it, both fitting the document and not, as alice.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode

from services.jobs.openapi import PATHS
from tests.extensions.jobs_service import TOKEN, JobsService, running
from tests.extensions.scripted_backend import Plan
from tests.fuzz.operations import MODES, fuzz, served

AS_ALICE = {"Authorization": f"token {TOKEN}"}
OPERATIONS = [(method.upper(), path) for path, methods in PATHS.items() for method in methods]
EXAMPLES = 100  # per operation, generation mode and target


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsService]:
    with running(tmp_path_factory.mktemp("platform")) as started:
        yield started


@pytest.fixture(scope="module")
def jobs_api(service: JobsService) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{service.api_url}api/openapi.json")
    assert schema.raw_schema["openapi"] == "3.1.0"
    # the document's servers entry is the path below the hub's origin; the service is here
    schema.config.update(base_url=f"{service.api_url.rstrip('/')}/api", request_timeout=10)
    return schema


@pytest.fixture(scope="module")
def alices_jobs(service: JobsService) -> list[str]:
    """Jobs of alice's that have ended each way, so operations on an id reach a real job too."""
    service.plans.extend(
        [Plan(lines=["[worker-0] hello"], result=42), Plan(outcome="failed", exit_code=3, failed_worker=0)]
    )
    submitted = [
        requests.post(f"{service.api_url}api/jobs", json=body, headers=AS_ALICE, timeout=10).json()["id"]
        for body in ({"code": "x = 42", "result": "x"}, {"code": "raise SystemExit(3)"})
    ]
    ended = ("succeeded", "failed")
    service.wait_for(lambda: all(service.jobs[i].state in ended for i in range(len(submitted))))
    return submitted


def test_every_served_operation_is_fuzzed(jobs_api: schemathesis.BaseSchema) -> None:
    assert served(jobs_api) == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.parametrize("mode", MODES, ids=str)
def test_no_input_gives_a_server_error(
    jobs_api: schemathesis.BaseSchema, alices_jobs: list[str], method: str, path: str, mode: GenerationMode
) -> None:
    fuzz(jobs_api, method, path, mode, job_ids=alices_jobs, headers=AS_ALICE, examples=EXAMPLES)

"""The jobs API fuzzed from its own OpenAPI document: no input gives a 5xx.

The real jobs application (its handlers, store, logs and supervisor) runs on
loopback with a scripted cluster and a test hub (`tests/extensions/jobs_service`);
schemathesis reads `api/openapi.json` from the running service and sends every
operation inputs generated from it, both fitting the document and not, as alice.

(schemathesis's own pytest loader, `from_fixture`, does not run on pytest 9, so
each operation is one test item here, its cases drawn with `@given`.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from services.jobs.openapi import PATHS
from tests.extensions.jobs_service import TOKEN, JobsService, running
from tests.extensions.scripted_backend import Plan

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
    operations = list(jobs_api.get_all_operations())
    assert all(isinstance(op, Ok) for op in operations), "the document has an invalid operation"
    served = {(op.ok().method.upper(), op.ok().path) for op in operations if isinstance(op, Ok)}
    assert served == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_no_input_gives_a_server_error(
    jobs_api: schemathesis.BaseSchema, alices_jobs: list[str], method: str, path: str, mode: GenerationMode
) -> None:
    operation = jobs_api[path][method]
    cases = operation.as_strategy(mode)
    if "{id}" in path:  # generated ids name no job: also aim at alice's real ones
        cases |= st.sampled_from(alices_jobs).flatmap(
            lambda job_id: operation.as_strategy(mode, path_parameters={"id": job_id})
        )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AS_ALICE, checks=[not_a_server_error])

    fuzz()

"""The jobs API's OpenAPI document against both ends of it.

The notebook client's shapes (`lavahub_jupyter.client`) must be the document's,
the document must name every route of the application, and what the real
application answers must validate against the schemas the document gives for
that path, method and status.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from lavahub_jupyter import client
from tornado import web

from services.jobs.backends.base import Diagnosis, Shortfall
from services.jobs.models import FRAMEWORKS, JobState
from services.jobs.openapi import ID, STATE_ENUM, openapi
from tests.extensions.jobs_service import NO_ACCESS_TOKEN, PREFIX, TOKEN, JobsService, running
from tests.extensions.scripted_backend import Plan

DOC = openapi(PREFIX)
SCHEMAS = DOC["components"]["schemas"]
STATES = [state.value for state in JobState]
PYTHON_TO_JSON = {
    str: {"string"},
    int: {"integer"},
    float: {"number", "integer"},
    bool: {"boolean"},
    type(None): {"null"},
    dict: {"object"},
    list: {"array"},
}


# -- reading schemas and annotations ---------------------------------------------------


def json_types(schema: dict[str, Any]) -> set[str]:
    """The JSON types a schema admits ("number" admits "integer" too)."""
    if "$ref" in schema:
        return {"object"}
    if "anyOf" in schema:
        return set().union(*(json_types(s) for s in schema["anyOf"]))
    kind = schema["type"]
    found = set(kind) if isinstance(kind, list) else {kind}
    return found | {"integer"} if "number" in found else found


def enum_of(schema: dict[str, Any]) -> list[Any]:
    """The values of the enum in a schema, or in its non-null alternative."""
    if "enum" in schema:
        return schema["enum"]
    (values,) = [s["enum"] for s in schema.get("anyOf", []) if "enum" in s]
    return values


def accepted(annotation: Any) -> set[str]:
    """The JSON types a client-side annotation holds."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return set().union(*(accepted(arg) for arg in typing.get_args(annotation)))
    if dataclasses.is_dataclass(annotation):
        return {"object"}
    return PYTHON_TO_JSON[typing.get_origin(annotation) or annotation]


class Reading(dict):
    """A JSON object that notes which keys are read from it."""

    def __init__(self, data: dict[str, Any], read: set[str]) -> None:
        super().__init__(data)
        self.read = read

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def example(model: str) -> dict[str, Any]:
    """A value of every property of a schema (objects are filled in by the caller)."""
    samples = {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "object": {}, "array": []}
    body = {}
    for name, prop in SCHEMAS[model]["properties"].items():
        body[name] = (
            enum_of(prop)[0] if "enum" in str(prop) else samples[sorted(json_types(prop) - {"null"})[0]]
        )
    return body


# -- the client's shapes ---------------------------------------------------------------


def test_the_client_sends_exactly_the_submission_schema() -> None:
    schema = SCHEMAS["Submission"]
    # Required[...] inside a postponed annotation is not in __required_keys__: read the hints
    hints = typing.get_type_hints(client.JobRequest, include_extras=True)
    required = {key for key, hint in hints.items() if typing.get_origin(hint) is typing.Required}
    assert set(hints) == set(schema["properties"])
    assert required == set(schema["required"])
    for key, hint in hints.items():
        plain = typing.get_args(hint)[0] if key in required else hint
        assert accepted(plain) <= json_types(schema["properties"][key]), key


@pytest.mark.parametrize(
    ("reader", "model", "nested"),
    [
        (client.Job, "Job", {"resources": ("Resources", client.Resources)}),
        (client.Explanation, "Explanation", {}),
    ],
)
def test_every_field_the_client_reads_is_in_the_schema_with_a_type_it_holds(
    reader: type, model: str, nested: dict[str, tuple[str, type]]
) -> None:
    read: set[str] = set()
    data = example(model)
    inner_read: dict[str, set[str]] = {key: set() for key in nested}
    for key, (inner_model, _) in nested.items():
        data[key] = Reading(example(inner_model), inner_read[key])
    parsed = reader.from_json(Reading(data, read))  # type: ignore[attr-defined]

    for name, schema, cls, seen in [(model, SCHEMAS[model], reader, read)] + [
        (inner, SCHEMAS[inner], inner_cls, inner_read[key]) for key, (inner, inner_cls) in nested.items()
    ]:
        assert seen, f"{cls.__name__} reads nothing"
        assert seen <= set(schema["properties"]), f"{cls.__name__} reads {seen - set(schema['properties'])}"
        hints = typing.get_type_hints(cls)
        for key in seen:
            assert json_types(schema["properties"][key]) <= accepted(hints[key]), f"{name}.{key}"
    assert parsed is not None


def test_states_and_frameworks_are_the_services() -> None:
    assert enum_of(SCHEMAS["Job"]["properties"]["state"]) == STATES
    assert enum_of(SCHEMAS["Explanation"]["properties"]["state"]) == STATES
    assert STATE_ENUM == STATES
    assert tuple(enum_of(SCHEMAS["Submission"]["properties"]["framework"])) == FRAMEWORKS
    assert {state.value for state in JobState if state.done} == client.TERMINAL_STATES


def test_the_client_knows_a_job_id_as_the_document_does() -> None:
    schema: dict[str, str] = ID["schema"]  # type: ignore[assignment]
    assert schema["pattern"] == f"^{client.JOB_ID_PATTERN}$"


def test_every_schema_is_valid_json_schema() -> None:
    for schema in SCHEMAS.values():
        Draft202012Validator.check_schema(schema)


# -- the service's routes and answers --------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsService]:
    with running(tmp_path_factory.mktemp("platform")) as started:
        yield started


def test_every_route_of_the_application_is_in_the_document(service: JobsService) -> None:
    api = PREFIX + "api"
    pattern_of_id: str = ID["schema"]["pattern"]  # type: ignore[index]
    job_id = "(" + pattern_of_id.strip("^$") + ")"
    routes = {}
    for rule in service.app.wildcard_router.rules:
        pattern = rule.matcher.regex.pattern.removesuffix("$")  # type: ignore[attr-defined]
        if not pattern.startswith(api + "/") or pattern == api + "/openapi.json":
            continue  # the service's own page, its catch-all, and the document itself
        methods = {m for m in ("get", "post", "put", "patch", "delete") if _overrides(rule.target, m)}
        routes[pattern.removeprefix(api).replace(job_id, "{id}")] = methods
    assert routes == {path: set(operations) for path, operations in DOC["paths"].items()}


def _overrides(handler: type, method: str) -> bool:
    return getattr(handler, method) is not getattr(web.RequestHandler, method)


def call(
    service: JobsService, method: str, path: str, body: Any = None, token: str = TOKEN
) -> tuple[int, Any]:
    """One request straight to the application; answers its status and decoded body."""
    request = urllib.request.Request(
        service.api_url + "api/" + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, kind, raw = response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        status, kind, raw = e.code, e.headers["Content-Type"], e.read()
    if kind.startswith("text/plain"):
        return status, raw.decode()
    assert kind == "application/json", kind
    return status, json.loads(raw)


def conforms(answer: Any, path: str, method: str, status: int) -> None:
    """`answer` validates against what the document says `method path` answers with `status`."""
    (content,) = DOC["paths"][path][method]["responses"][str(status)]["content"].values()
    Draft202012Validator({**content["schema"], "components": DOC["components"]}).validate(answer)


def wait_done(service: JobsService, job_id: str) -> dict[str, Any]:
    """The job once it has ended and the service holds all its output (as a watching cell waits)."""

    def complete() -> bool:
        job = service.ctx.store.get(job_id)
        return job is not None and job.log_complete

    service.wait_for(lambda: service.call(complete), timeout=10)
    _, job = call(service, "GET", f"jobs/{job_id}")
    return job


def test_the_services_answers_are_the_documents(service: JobsService) -> None:
    cwd = str(service.workspace("vision"))
    service.plans += [
        Plan(lines=["[worker-0] done"], result={"loss": 0.1}),
        Plan(
            lines=["[worker-1] boom"],
            outcome="failed",
            exit_code=2,
            reason="worker 1 exited",
            failed_worker=1,
        ),
        Plan(pending=60, diagnosis=Diagnosis(pool="default", shortfalls=(Shortfall("GPUs", 2, 0, 1),))),
    ]
    jobs = []
    for body in (
        {"code": "x = 1", "result": "x"},
        {"code": "boom()", "workers": 2},
        {"code": "wait()", "gpus": 1},
    ):
        status, job = call(service, "POST", "jobs", {**body, "project": "vision", "cwd": cwd})
        assert status == 201, job
        conforms(job, "/jobs", "post", 201)
        jobs.append(job["id"])
        service.wait_for(lambda: jobs[-1] in service.backend.scripts)  # submitted in this order
    succeeded, failed, pending = jobs

    for job_id in (succeeded, failed):
        conforms(wait_done(service, job_id), "/jobs/{id}", "get", 200)
        status, explanation = call(service, "GET", f"jobs/{job_id}/explain")
        assert status == 200
        conforms(explanation, "/jobs/{id}/explain", "get", 200)
    assert explanation["details"] == ["[worker-1] boom"]
    status, explanation = call(service, "GET", f"jobs/{pending}/explain")
    conforms(explanation, "/jobs/{id}/explain", "get", 200)
    assert explanation["state"] == "pending" and explanation["details"]

    status, listing = call(service, "GET", "jobs")
    assert status == 200 and [job["id"] for job in listing["jobs"]] == jobs[::-1]
    conforms(listing, "/jobs", "get", 200)
    status, result = call(service, "GET", f"jobs/{succeeded}/result")
    conforms(result, "/jobs/{id}/result", "get", 200)
    status, logs = call(service, "GET", f"jobs/{succeeded}/logs")
    assert (status, logs) == (200, "[worker-0] done\n")
    status, cancelled = call(service, "DELETE", f"jobs/{pending}")
    assert status == 200 and cancelled["state"] == "cancelled"
    conforms(cancelled, "/jobs/{id}", "delete", 200)


@pytest.mark.parametrize(
    ("method", "path", "body", "token", "status", "documented"),
    [
        ("GET", "jobs/0123456789abcdef", None, TOKEN, 404, "/jobs/{id}"),
        ("GET", "jobs/0123456789abcdef/result", None, TOKEN, 404, "/jobs/{id}/result"),
        ("GET", "jobs", None, "not-a-token", 401, "/jobs"),
        ("GET", "jobs", None, NO_ACCESS_TOKEN, 403, "/jobs"),
        ("GET", "jobs?state=asleep", None, TOKEN, 400, "/jobs"),
        ("POST", "jobs", {"code": "x = 1", "gpu": 1}, TOKEN, 400, "/jobs"),
    ],
)
def test_errors_are_the_documents(
    service: JobsService, method: str, path: str, body: Any, token: str, status: int, documented: str
) -> None:
    answered, error = call(service, method, path, body, token=token)
    assert answered == status, error
    conforms(error, documented, method.lower(), status)


def test_options_are_the_callers_projects_and_their_templates(service: JobsService) -> None:
    status, options = call(service, "GET", "options")
    assert status == 200, options
    conforms(options, "/options", "get", 200)
    # alice is in default (8 CPUs) and vision (4 GPUs); pytorch is vision's only
    assert [(p["name"], p["quota"]) for p in options["projects"]] == [
        ("default", {"cpus": 8, "memory": None, "gpus": None}),
        ("vision", {"cpus": None, "memory": None, "gpus": 4}),
    ]
    by_slug = {t["slug"]: t for t in options["templates"]}
    assert sorted(by_slug) == ["python", "pytorch"]
    assert (by_slug["pytorch"]["gpus"], by_slug["pytorch"]["max_gpus"]) == (0, 2)
    assert by_slug["pytorch"]["projects"] == ["vision"] and by_slug["python"]["projects"] == []
    assert options["max_workers"] == 8 and "python" in options["frameworks"]

"""The lab extension's server side (`lavahub_jupyter.server`) in a real Jupyter server (pytest-jupyter).

The server runs with JupyterHub's own identity provider, so requests are
authenticated by a hub (the test hub of `jobs_service`), as under
`jupyterhub-singleuser`. alice owns the server; bob may visit it. Every call
is forwarded to the real jobs service, whose recorded requests show whose
token it carried.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F403  (pytest-jupyter's fixtures, for this module only)
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from traitlets.config import Config

from services.jobs.backends.base import Diagnosis, Shortfall

from .jobs_service import JobsService
from .lab_server import ALICE_BROWSER, AUTHORIZER, BOB_BROWSER, BOB_NO_JOBS, IDENTITY, add_users, server_env
from .scripted_backend import Plan


@pytest.fixture(scope="module")
def hub_users(service: JobsService) -> None:
    add_users(service)


@pytest.fixture  # type: ignore[no-redef]  # replaces pytest-jupyter's
def jp_server_config(
    service: JobsService, hub_users: None, monkeypatch: pytest.MonkeyPatch, jp_base_url: str
) -> Config:
    """alice's server as the hub starts it: the hub's env, its identity provider, this extension."""
    for key, value in server_env(service, jp_base_url).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return Config(
        {
            "ServerApp": {
                "jpserver_extensions": {"lavahub_jupyter": True},
                "identity_provider_class": IDENTITY,
                "authorizer_class": AUTHORIZER,
                # a browser sends the _xsrf cookie's token with every POST (tests/browser does);
                # these requests carry only a token, which JupyterHub's xsrf check sees too late
                "disable_check_xsrf": True,
            }
        }
    )


Fetch = Callable[..., HTTPResponse]


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[Fetch]:
    """A request to the server as the holder of `token`; answers the response, errors included."""

    def call(*path: str, token: str = ALICE_BROWSER, method: str = "GET", body: Any = None, **params: str):
        async def go() -> HTTPResponse:
            try:
                return await jp_fetch(
                    *path,
                    method=method,
                    headers={"Authorization": f"token {token}"},
                    params=params,
                    body=None if body is None else json.dumps(body),
                    allow_nonstandard_methods=True,
                )
            except HTTPClientError as e:
                assert e.response is not None, e
                return e.response

        return jp_asyncio_loop.run_until_complete(go())

    yield call


def decoded(response: HTTPResponse) -> Any:
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return json.loads(response.body)


def tokens_sent(service: JobsService, method: str, suffix: str) -> list[str]:
    return [r.headers.get("Authorization", "") for r in service.recorded(method, suffix)]


def test_a_visitor_acts_as_themselves_not_as_the_servers_owner(service: JobsService, fetch: Fetch) -> None:
    answer = fetch("lavahub", "api", "jobs", token=BOB_BROWSER)
    assert answer.code == 200, answer.body
    assert decoded(answer) == {"jobs": []}
    assert tokens_sent(service, "GET", "/jobs") == [f"token {BOB_BROWSER}"]

    submitted = fetch(
        "lavahub",
        "api",
        "jobs",
        token=BOB_BROWSER,
        method="POST",
        body={"code": "print(1)", "project": "vision"},
    )
    # bob is not in vision (alice is): the service refuses him, whatever the server's owner may do
    assert submitted.code == 400 and "vision" in decoded(submitted)["error"]
    assert service.jobs == []


def test_the_owner_submits_follows_and_explains_through_the_server(
    service: JobsService, fetch: Fetch
) -> None:
    service.plans += [
        Plan(lines=["[worker-0] hello", "[worker-1] hello"]),
        Plan(
            pending=60,
            diagnosis=Diagnosis(pool="default", shortfalls=(Shortfall("CPUs", 4, 1, 2),), position=2),
        ),
    ]
    cwd = str(service.workspace("vision"))
    done = decoded(
        fetch("lavahub", "api", "jobs", method="POST", body={"code": "x", "workers": 2, "cwd": cwd})
    )
    service.wait_for(lambda: service.jobs[0].record.log_complete, timeout=10)
    logs = fetch("lavahub", "api", "jobs", done["id"], "logs", follow="true")
    assert logs.code == 200 and logs.headers["Content-Type"].startswith("text/plain")
    assert logs.body.decode().splitlines() == ["[worker-0] hello", "[worker-1] hello"]

    waiting = decoded(fetch("lavahub", "api", "jobs", method="POST", body={"code": "y", "cwd": cwd}))
    service.wait_for(lambda: waiting["id"] in service.backend.scripts)
    told = decoded(fetch("lavahub", "api", "jobs", waiting["id"], "explain"))
    assert told["state"] == "pending" and told["position"] == 2 and "CPUs" in told["summary"]
    cancelled = decoded(fetch("lavahub", "api", "jobs", waiting["id"], method="DELETE"))
    assert cancelled["state"] == "cancelled"
    assert set(tokens_sent(service, "POST", "/jobs")) == {f"token {ALICE_BROWSER}"}


def test_the_services_errors_pass_through_as_json(service: JobsService, fetch: Fetch) -> None:
    missing = fetch("lavahub", "api", "jobs", "0123456789abcdef")
    assert missing.code == 404 and decoded(missing)["hint"] == "GET jobs lists your jobs"
    bad = fetch("lavahub", "api", "jobs", method="POST", body={"code": "x", "workers": 0})
    assert bad.code == 400 and decoded(bad)["field"] == "workers"
    refused = fetch("lavahub", "api", "jobs", token=BOB_NO_JOBS)
    assert refused.code == 403 and "access:services!service=jobs" in decoded(refused)["hint"]


def test_only_the_jobs_apis_routes_are_forwarded(service: JobsService, fetch: Fetch) -> None:
    for path in (("openapi.json",), ("jobs", "..", "openapi.json"), ("jobs", "not-an-id")):
        assert fetch("lavahub", "api", *path).code == 404
    assert service.recorded("GET") == []


def test_no_token_no_call(service: JobsService, fetch: Fetch) -> None:
    # a request the hub does not vouch for never reaches the service
    assert fetch("lavahub", "api", "jobs", token="not-a-token").code in (302, 403)
    assert service.recorded("GET") == []


def test_options_workspace_and_gpus(service: JobsService, fetch: Fetch) -> None:
    options = decoded(fetch("lavahub", "api", "options"))
    assert [p["name"] for p in options["projects"]] == ["default", "vision"]
    workspace = decoded(fetch("lavahub", "workspace"))
    assert workspace == {"template": "pytorch", "project": "vision", "jobs": True, "jobs_off": None}
    # no NVIDIA driver here: no GPUs, and no error
    assert decoded(fetch("lavahub", "gpus")) == {"gpus": []}
    document = decoded(fetch("lavahub", "openapi.json"))
    assert document["servers"] == [{"url": "/a%40b/lavahub"}]
    assert {"/api/jobs", "/api/options", "/api/jobs/{id}/logs", "/gpus", "/workspace"} <= set(
        document["paths"]
    )


def test_jobs_off_is_said_once(service: JobsService, fetch: Fetch, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAVAHUB_JOBS_URL")
    monkeypatch.setenv("LAVAHUB_JOBS_OFF", "jobs.enabled is false in this platform's config")
    off = fetch("lavahub", "api", "jobs")
    assert off.code == 503
    assert decoded(off) == {
        "error": "Jobs are off on this platform.",
        "hint": "jobs.enabled is false in this platform's config",
    }


def test_a_followed_log_streams_through_the_server_as_it_is_written(
    service: JobsService, fetch: Fetch, jp_http_port: int, jp_base_url: str,
    jp_asyncio_loop: asyncio.AbstractEventLoop,
) -> None:  # fmt: skip
    service.plans.append(Plan(lines=[f"[worker-0] step {i}" for i in range(5)], interval=0.4))
    cwd = str(service.workspace("vision"))
    job = decoded(fetch("lavahub", "api", "jobs", method="POST", body={"code": "x", "cwd": cwd}))
    arrived: list[tuple[float, bytes]] = []

    async def follow() -> int:
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}lavahub/api/jobs/{job['id']}/logs?follow=true"
        response = await AsyncHTTPClient().fetch(
            url,
            headers={"Authorization": f"token {ALICE_BROWSER}"},
            streaming_callback=lambda chunk: arrived.append((time.monotonic(), chunk)),
            request_timeout=60,
        )
        return response.code

    assert jp_asyncio_loop.run_until_complete(follow()) == 200
    text = b"".join(chunk for _, chunk in arrived).decode()
    assert text.splitlines() == [f"[worker-0] step {i}" for i in range(5)]
    # the lines came as they were written (0.4 s apart), not all at once at the end
    assert arrived[-1][0] - arrived[0][0] > 1.0, [round(t - arrived[0][0], 2) for t, _ in arrived]

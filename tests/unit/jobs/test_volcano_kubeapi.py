"""kubeapi's unread calls answer errors as the client's own calls do: with ApiException.

A small HTTP server on loopback plays the API server, and the real kubernetes_asyncio client talks to it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from services.jobs.backends.volcano.kubeapi import raw, read_json

CONFLICT = {"kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409}


async def create(request: web.Request) -> web.Response:
    body = await request.json()
    if body["metadata"]["name"] == "taken":
        return web.json_response(CONFLICT, status=409)
    return web.json_response(body, status=201)


async def log(request: web.Request) -> web.Response:
    if request.match_info["pod"] == "gone":
        return web.json_response({"kind": "Status", "code": 404}, status=404)
    return web.Response(text="2026-12-04T00:00:00Z hello\n")


@pytest.fixture
async def core() -> AsyncIterator[CoreV1Api]:
    app = web.Application()
    app.router.add_post("/api/v1/namespaces/{ns}/configmaps", create)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{pod}/log", log)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    configuration = Configuration(host=f"http://127.0.0.1:{port}")
    async with ApiClient(configuration) as api:
        yield CoreV1Api(api)
    await runner.cleanup()


async def test_a_created_object_is_its_json(core: CoreV1Api) -> None:
    made = await read_json(core.create_namespaced_config_map, "ns", {"metadata": {"name": "files"}})
    assert made == {"metadata": {"name": "files"}}


async def test_a_conflict_is_an_api_exception_with_its_status_not_the_object(core: CoreV1Api) -> None:
    with pytest.raises(ApiException) as refused:
        await read_json(core.create_namespaced_config_map, "ns", {"metadata": {"name": "taken"}})
    assert refused.value.status == 409
    assert refused.value.body is not None and json.loads(refused.value.body)["reason"] == "AlreadyExists"


async def test_a_stream_of_a_gone_pod_is_a_404_not_a_line(core: CoreV1Api) -> None:
    response = await raw(core.read_namespaced_pod_log, "here", "ns")
    async with response:
        assert await response.read() == b"2026-12-04T00:00:00Z hello\n"
    with pytest.raises(ApiException) as gone:
        await raw(core.read_namespaced_pod_log, "gone", "ns")
    assert gone.value.status == 404

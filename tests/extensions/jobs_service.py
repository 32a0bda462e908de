"""The real jobs service for tests: its application, store, logs and supervisor, on loopback.

What differs from production is only what lies outside the service: the hub
(`hub_api.TestHub`, a real HTTP server answering what `HubAuth` and the service
ask), the cluster (`scripted_backend.ScriptedBackend`, whose jobs follow a
`Plan`), and a TCP proxy in front (`stream_cutter.StreamCutter`) that can drop a
log stream. Everything runs on one asyncio loop in a background thread; the
test-facing methods read the service's own records on that loop.

Every request that reaches the application is recorded (`recorded(...)`) with
its body and the service's answer, by a layer between the HTTP server and the
application.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qsl, urlsplit

import cloudpickle
from jupyterhub.services.auth import HubAuth
from tornado import httpserver, httputil, netutil, web

from lavahub.config import parse_config
from services.jobs.app import Context, make_app
from services.jobs.backends.base import Backend
from services.jobs.models import Job
from services.jobs.spec import Caller
from spawner.volumes import by_kind

from .hub_api import TestHub, user_model
from .scripted_backend import Plan, Script, ScriptedBackend
from .stream_cutter import StreamCutter

PREFIX = "/services/jobs/"
USER = "alice"
TOKEN = "test-token"  # alice's notebook token: may use the jobs service
NO_ACCESS_TOKEN = "no-access-token"  # alice's token without access:services!service=jobs
SERVICE_TOKEN = "jobs-service-token"  # the service's own token, for the hub's groups
ACCESS = "access:services!service=jobs"

CONFIG: dict[str, Any] = {
    "projects": {
        "default": {"members": ["alice", "bob"], "quota": {"cpus": 8}},
        "vision": {"members": ["alice"], "quota": {"gpus": 4}},
    },
    "templates": [
        {"slug": "python", "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
         "cpus": 1, "memory": "2Gi", "max_cpus": 4, "max_memory": "8Gi", "max_gpus": 2},
        {"slug": "pytorch", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06",
         "cpus": 2, "memory": "4Gi", "max_cpus": 4, "max_memory": "16Gi", "max_gpus": 2,
         "projects": ["vision"]},
    ],
    "jobs": {"max_workers": 8},
}  # fmt: skip

T = TypeVar("T")


@dataclass
class Recorded:
    """One request as the application received it, and what it answered (so far, for a stream)."""

    method: str
    path: str  # below PREFIX, without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int | None = None
    response: bytearray = field(default_factory=bytearray)

    def json(self) -> Any:
        return json.loads(bytes(self.response))


class JobsService:
    """Start with `start()`; `url` (through the proxy) is what `LAVAHUB_JOBS_URL` is set to."""

    def __init__(
        self, data_dir: Path, config: dict[str, Any] | None = None, backend: Backend | None = None
    ) -> None:
        """`config`: keys that replace CONFIG's (its projects, say); `backend`: a real one instead
        of the scripted cluster (set up on the service's loop)."""
        self.config = parse_config({**CONFIG, **(config or {}), "data_dir": str(data_dir)})
        self.plans: list[Plan] = []
        self.requests: list[Recorded] = []
        self.backend: Any = backend or ScriptedBackend(self.plans)  # scripted: tests reach its `scripts`
        groups = [name for name, project in self.config.projects.items() if USER in project.members]
        self.hub = TestHub(
            {
                TOKEN: user_model(USER, groups, scopes=[ACCESS]),
                NO_ACCESS_TOKEN: user_model(USER, groups),
            },
            self.config.projects,
            SERVICE_TOKEN,
        )
        self.url = self.api_url = self.hub_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="jobs-service", daemon=True)

    # -- life ------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(30) or self._failure is not None:
            raise RuntimeError("the jobs service did not start") from self._failure

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(30)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:
            self._failure = e
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.hub_url = self.hub.listen()
        hub_auth = HubAuth(
            api_url=self.hub_url, api_token=SERVICE_TOKEN, access_scopes={ACCESS}, cache_max_age=60
        )
        ctx = self.ctx = Context(self.config, self.backend, hub_auth)
        ctx.templates.seed(self.config.templates)
        self.app = make_app(ctx, PREFIX)
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        server = httpserver.HTTPServer(_Recording(self.app, self.requests))
        server.add_sockets(sockets)
        port = sockets[0].getsockname()[1]
        self.cutter = StreamCutter(port)
        self.api_url = f"http://127.0.0.1:{port}{PREFIX}"
        self.url = f"http://127.0.0.1:{await self.cutter.start()}{PREFIX}"
        await self.backend.setup()
        ctx.supervisor.start()
        self._started.set()
        await self._stopping.wait()
        await ctx.supervisor.stop()
        await self.backend.cleanup()
        self.cutter.stop()
        server.stop()
        self.hub.stop()

    def call(self, fn: Callable[[], T], timeout: float = 10) -> T:
        """`fn()` run on the service's loop, where its records live."""
        assert self._loop is not None

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    # -- what tests look at ------------------------------------------------------------

    def reset(self) -> None:
        self.plans.clear()
        self.requests.clear()

    def recorded(self, method: str, path_suffix: str = "") -> list[Recorded]:
        return [r for r in list(self.requests) if r.method == method and r.path.endswith(path_suffix)]

    def last_job(self) -> ServiceJob:
        (job,) = self.call(lambda: self.ctx.store.list(limit=1))
        return ServiceJob(self, job.id)

    @property
    def jobs(self) -> list[ServiceJob]:
        return [ServiceJob(self, job.id) for job in self.call(lambda: self.ctx.store.list(limit=10_000))]

    def workspace(self, project: str) -> Path:
        """Where the user's personal volume lies, as their workspaces (and the service) see it."""
        volumes = self.ctx.volumes(Caller(USER), project)
        return Path(by_kind(volumes)["personal"].mount_path)

    def cut_next_log_stream(self, after: int) -> None:
        """Drop the next followed log stream after `after` lines (at the proxy)."""
        self.call(lambda: self.cutter.cut_next_stream(after))

    def wait_for(self, condition: Callable[[], bool], timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not so within {timeout} s: {condition}")
            time.sleep(0.02)


@contextlib.contextmanager
def running(
    data_dir: Path, config: dict[str, Any] | None = None, backend: Backend | None = None
) -> Iterator[JobsService]:
    """A started service keeping its data in `data_dir`, stopped afterwards."""
    service = JobsService(data_dir, config, backend)
    service.start()
    try:
        yield service
    finally:
        service.stop()


class ServiceJob:
    """A job as the service keeps it, and as the scripted cluster ran it."""

    def __init__(self, service: JobsService, job_id: str) -> None:
        self.service = service
        self.id = job_id

    @property
    def record(self) -> Job:
        job = self.service.call(lambda: self.service.ctx.store.get(self.id))
        assert job is not None
        return job

    @property
    def state(self) -> str:
        return self.record.state.value

    @property
    def request(self) -> Any:
        """The body of the POST that created the job."""
        for posted in self.service.recorded("POST", "api/jobs"):
            if posted.status == 201 and posted.json()["id"] == self.id:
                return posted.body
        raise AssertionError(f"no recorded POST created job {self.id}")

    @property
    def script(self) -> Script:
        """What the cluster was given and did (waits for the supervisor to submit the job)."""
        scripts = self.service.backend.scripts
        self.service.wait_for(lambda: self.id in scripts)
        return scripts[self.id]

    @property
    def exports(self) -> dict[str, Any] | None:
        """The exported variables as the cluster received them, unpickled."""
        data = self.script.spec.exports
        return None if data is None else cloudpickle.loads(data)

    @property
    def logs(self) -> list[str]:
        """The service's copy of the job's output."""
        return self.service.call(lambda: self.service.ctx.logs[self.id].read())

    @property
    def finished_at(self) -> float:
        """When the job ended on the cluster (time.monotonic())."""
        ended = self.script.ended_at
        assert ended is not None, f"job {self.id} has not ended"
        return ended


class _Recording(httputil.HTTPServerConnectionDelegate):
    """Between the HTTP server and the application: records each request and its answer."""

    def __init__(self, app: web.Application, requests: list[Recorded]) -> None:
        self.app = app
        self.requests = requests

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        exchange: list[Recorded] = []
        # _AnswerRecorder stands in for the connection: it forwards what it does not record
        recorder = cast(httputil.HTTPConnection, _AnswerRecorder(request_conn, exchange))
        inner = self.app.start_request(server_conn, recorder)
        return _RequestRecorder(inner, self.requests, exchange)

    def on_close(self, server_conn: object) -> None:
        self.app.on_close(server_conn)


class _RequestRecorder(httputil.HTTPMessageDelegate):
    def __init__(
        self, inner: httputil.HTTPMessageDelegate, requests: list[Recorded], exchange: list[Recorded]
    ) -> None:
        self.inner = inner
        self.requests = requests
        self.exchange = exchange
        self.start: httputil.RequestStartLine | None = None
        self.headers: httputil.HTTPHeaders | None = None
        self.body = bytearray()

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> Any:
        self.start, self.headers = start_line, headers
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Any:
        self.body += chunk
        return self.inner.data_received(chunk)

    def finish(self) -> None:
        assert self.start is not None and self.headers is not None
        url = urlsplit(self.start.path)
        recorded = Recorded(
            method=self.start.method,
            path=url.path.removeprefix(PREFIX),
            query=dict(parse_qsl(url.query)),
            headers=dict(self.headers),
            body=_decoded(bytes(self.body)),
        )
        self.exchange.append(recorded)
        self.requests.append(recorded)
        self.inner.finish()

    def on_connection_close(self) -> None:
        self.inner.on_connection_close()


def _decoded(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return body


class _AnswerRecorder:
    """The request's connection, as the application writes its answer to it."""

    def __init__(self, inner: httputil.HTTPConnection, exchange: list[Recorded]) -> None:
        self._inner = inner
        self._exchange = exchange

    def write_headers(
        self, start_line: Any, headers: httputil.HTTPHeaders, chunk: bytes | None = None
    ) -> Any:
        if self._exchange:
            self._exchange[0].status = start_line.code
            self._exchange[0].response += chunk or b""
        return self._inner.write_headers(start_line, headers, chunk)

    def write(self, chunk: bytes) -> Any:
        if self._exchange:
            self._exchange[0].response += chunk
        return self._inner.write(chunk)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

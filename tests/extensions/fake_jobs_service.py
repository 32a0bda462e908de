"""A test double of the jobs service: its HTTP API on 127.0.0.1, with jobs that follow a script.

It speaks the contract the magic is written to (``POST/GET api/jobs``,
``GET/DELETE api/jobs/{id}``, ``logs?follow=true&since=N`` streamed chunked,
``explain``, ``result``, JSON errors) over real HTTP, so the client is exercised
exactly as against the real service. What a submitted job does is not computed
from its code: a test queues a ``Plan`` (how long it pends, which log lines it
writes and how fast, how it ends) before running the cell, and then inspects
the recorded requests and the decoded exports.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import cloudpickle

PREFIX = "/services/jobs/"
TOKEN = "test-token"
USER = "alice"
GPU_QUOTA = 4
TERMINAL = ("succeeded", "failed", "cancelled")
NO_RESULT = object()


@dataclass
class Plan:
    """What the next submitted job does."""

    pending: float = 0.0  # seconds in `pending` before it runs
    explain: str = "Waiting for the scheduler to place 1 worker."
    lines: list[str] = field(default_factory=list)  # written one by one once running
    interval: float = 0.0  # seconds between two lines
    outcome: str | None = "succeeded"  # None: runs until cancelled
    exit_code: int | None = 0
    reason: str | None = None
    details: list[str] = field(default_factory=list)  # what `explain` says about a failure
    result: Any = NO_RESULT  # the value rank 0 sends back
    drop_after: int | None = None  # cut the first log stream abruptly after this many lines


@dataclass
class FakeJob:
    id: str
    request: dict[str, Any]
    plan: Plan
    exports: dict[str, Any] | None
    state: str = "pending"
    reason: str | None = None
    exit_code: int | None = None
    created: str = ""
    started: str | None = None
    finished: str | None = None
    finished_at: float | None = None  # time.monotonic() when it ended
    logs: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    streams_dropped: int = 0

    def has_news(self, lines_sent: int) -> bool:
        return len(self.logs) > lines_sent or self.state in TERMINAL

    def to_json(self) -> dict[str, Any]:
        request = self.request
        return {
            "id": self.id,
            "name": request.get("name") or f"job-{self.id[:6]}",
            "user": USER,
            "project": request.get("project", "default"),
            "template": request.get("template", "python"),
            "framework": request.get("framework", "python"),
            "workers": request.get("workers", 1),
            "resources": {
                "cpus": request.get("cpus", 1),
                "memory": request.get("memory", "2Gi"),
                "gpus": request.get("gpus", 0),
            },
            "state": self.state,
            "reason": self.reason,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str  # below PREFIX, without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def _now() -> str:
    return datetime.now(UTC).isoformat()


class FakeJobsService:
    """Start with ``start()``; ``url`` is what ``LAVAHUB_JOBS_URL`` is set to."""

    def __init__(self) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.plans: list[Plan] = []
        self.requests: list[Recorded] = []
        self.changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{PREFIX}"

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="fake-jobs-service", daemon=True).start()

    def stop(self) -> None:
        for job in self.jobs.values():
            self._cancel(job)
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        self.plans.clear()
        self.requests.clear()

    # -- what tests look at ----------------------------------------------------------

    def last_job(self) -> FakeJob:
        return list(self.jobs.values())[-1]

    def recorded(self, method: str, path_suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # -- the jobs --------------------------------------------------------------------

    def submit(self, request: dict[str, Any]) -> FakeJob:
        exports = None
        if request.get("exports"):
            exports = cloudpickle.loads(base64.b64decode(request["exports"]))
        plan = self.plans.pop(0) if self.plans else Plan()
        job = FakeJob(uuid.uuid4().hex[:12], request, plan, exports, created=_now())
        with self.changed:
            self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), name=f"fake-job-{job.id}", daemon=True).start()
        return job

    def _run(self, job: FakeJob) -> None:
        plan = job.plan
        if plan.pending and job.cancelled.wait(plan.pending):
            return
        with self.changed:
            if job.state != "pending":
                return
            job.state, job.started = "running", _now()
            self.changed.notify_all()
        for number, line in enumerate(plan.lines):
            if number and plan.interval and job.cancelled.wait(plan.interval):
                return
            with self.changed:
                if job.state != "running":
                    return
                job.logs.append(line)
                self.changed.notify_all()
        if plan.outcome is None:
            return  # runs until cancelled
        with self.changed:
            if job.state != "running":
                return
            job.state, job.exit_code, job.reason = plan.outcome, plan.exit_code, plan.reason
            job.finished, job.finished_at = _now(), time.monotonic()
            self.changed.notify_all()

    def _cancel(self, job: FakeJob) -> None:
        with self.changed:
            if job.state not in TERMINAL:
                job.state, job.reason = "cancelled", f"cancelled by {USER}"
                job.finished, job.finished_at = _now(), time.monotonic()
            job.cancelled.set()
            self.changed.notify_all()

    def explain(self, job: FakeJob) -> dict[str, Any]:
        if job.state == "pending":
            return {"state": "pending", "summary": job.plan.explain, "details": [], "suggestions": []}
        if job.state == "failed":
            return {
                "state": "failed",
                "summary": f"The job failed: {job.reason}.",
                "details": job.plan.details,
                "suggestions": ["Fix the error above and run the cell again."],
            }
        return {"state": job.state, "summary": f"The job is {job.state}.", "details": [], "suggestions": []}


def _handler(service: FakeJobsService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        # -- answers ----------------------------------------------------------------

        def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, error: str, hint: str | None = None) -> None:
            self._send(status, {"error": error, **({"hint": hint} if hint else {})})

        # -- routing ----------------------------------------------------------------

        def _dispatch(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            path = parts.path.removeprefix(PREFIX)
            service.requests.append(Recorded(method, path, query, dict(self.headers), body))
            if self.headers.get("Authorization") != f"token {TOKEN}":
                return self._error(403, "this token may not use the jobs service", "log in again")
            segments = path.split("/")
            if segments[:2] == ["api", "jobs"] and len(segments) == 2:
                if method == "POST":
                    return self._submit(body)
                if method == "GET":
                    jobs = [job.to_json() for job in reversed(service.jobs.values())]
                    return self._send(200, {"jobs": jobs})
            if segments[:2] == ["api", "jobs"] and len(segments) in (3, 4):
                job = service.jobs.get(segments[2])
                if job is None:
                    return self._error(404, f"no job {segments[2]}", "%jobs lists your jobs")
                action = segments[3] if len(segments) == 4 else ""
                if (method, action) == ("GET", ""):
                    return self._send(200, job.to_json())
                if (method, action) == ("DELETE", ""):
                    service._cancel(job)
                    return self._send(200, job.to_json())
                if (method, action) == ("GET", "explain"):
                    return self._send(200, service.explain(job))
                if (method, action) == ("GET", "result"):
                    if job.state != "succeeded" or job.plan.result is NO_RESULT:
                        return self._error(404, f"job {job.id} has no result")
                    encoded = base64.b64encode(cloudpickle.dumps(job.plan.result)).decode()
                    return self._send(200, {"result": encoded})
                if (method, action) == ("GET", "logs"):
                    since = int(query.get("since", 0))
                    if query.get("follow") == "true":
                        return self._follow(job, since)
                    text = "".join(line + "\n" for line in job.logs[since:])
                    return self._send(200, text.encode(), "text/plain; charset=utf-8")
            return self._error(404, f"no such endpoint: {method} {path}")

        def _submit(self, body: Any) -> None:
            if not isinstance(body, dict) or not isinstance(body.get("code"), str):
                return self._error(400, "a job needs code")
            gpus = body.get("gpus", 0) * body.get("workers", 1)
            if gpus > GPU_QUOTA:
                return self._error(
                    400,
                    f"project {body.get('project')} allows {GPU_QUOTA} GPUs, this job asks for {gpus}",
                    "ask for fewer GPUs or workers",
                )
            job = service.submit(body)
            return self._send(201, job.to_json())

        def _follow(self, job: FakeJob, since: int) -> None:
            """Stream lines from `since` as they come (chunked); end when the job has ended."""
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            drop_after = job.plan.drop_after if job.streams_dropped == 0 else None
            sent = since
            written = 0
            try:
                while True:
                    with service.changed:
                        service.changed.wait_for(partial(job.has_news, sent), 5)
                        new, ended = job.logs[sent:], job.state in TERMINAL
                    for line in new:
                        data = (line + "\n").encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                        sent += 1
                        written += 1
                        if drop_after is not None and written >= drop_after:
                            job.streams_dropped += 1
                            self.close_connection = True  # no last chunk: the client sees a cut stream
                            return
                    if ended:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                        return
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler

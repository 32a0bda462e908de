"""A small client of the jobs service's HTTP API, one method per endpoint.

The API lives under ``<LAVAHUB_JOBS_URL>api/`` and is called with the notebook
server's own ``JUPYTERHUB_API_TOKEN``. Every failure, whether the service
answered with an error, could not be reached or answered something unexpected,
is raised as one ``JobsError(message, hint)``.

Only the standard library is used, so that the log stream can be read line by
line as the service sends it, whatever its transfer encoding.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Required, TypedDict

from .errors import LavahubError

JOBS_URL_ENV = "LAVAHUB_JOBS_URL"
JOBS_OFF_ENV = "LAVAHUB_JOBS_OFF"  # set instead, with the reason, where the platform runs no jobs
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"

JOB_ID_PATTERN = "[0-9a-f]{16}"  # as the service's API document says (tests/unit/jobs/test_api_contract.py)
TERMINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})

# How long a plain request may take, and how long the log stream may stay silent
# before it is taken as dropped (the follower then reconnects where it left off).
REQUEST_TIMEOUT = 30.0
STREAM_TIMEOUT = 60.0


class JobsError(LavahubError):
    """Any failure to talk to the jobs service; ``status`` is the HTTP status, if one came."""

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class JobRequest(TypedDict, total=False):
    """The body of ``POST api/jobs``; only ``code`` is required."""

    code: Required[str]
    workers: int
    min_workers: int
    framework: str
    gpus: int
    cpus: float
    memory: str
    project: str
    template: str
    name: str
    timeout: int
    env: dict[str, str]
    cwd: str
    exports: str
    result: str


@dataclass(frozen=True)
class Resources:
    """What each worker of a job asked for."""

    cpus: float | None = None
    memory: str | None = None
    gpus: int | None = None


@dataclass(frozen=True)
class Job:
    """A job as the service reports it."""

    id: str
    name: str | None = None
    user: str | None = None
    project: str | None = None
    template: str | None = None
    framework: str | None = None
    workers: int | None = None
    resources: Resources = field(default_factory=Resources)
    state: str = "pending"
    reason: str | None = None
    created: str | None = None
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES

    @classmethod
    def from_json(cls, data: Any) -> Job:
        if not isinstance(data, Mapping) or not data.get("id"):
            raise JobsError("the jobs service answered with something that is not a job", repr(data)[:200])
        resources = data.get("resources") or {}
        return cls(
            id=str(data["id"]),
            name=data.get("name"),
            user=data.get("user"),
            project=data.get("project"),
            template=data.get("template"),
            framework=data.get("framework"),
            workers=data.get("workers"),
            resources=Resources(
                cpus=resources.get("cpus"), memory=resources.get("memory"), gpus=resources.get("gpus")
            ),
            state=str(data.get("state") or "pending"),
            reason=data.get("reason"),
            created=data.get("created"),
            started=data.get("started"),
            finished=data.get("finished"),
            exit_code=data.get("exit_code"),
        )


@dataclass(frozen=True)
class Explanation:
    """Why a job is pending, or why it failed, in plain words."""

    state: str | None
    summary: str
    details: list[str] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any) -> Explanation:
        if not isinstance(data, Mapping):
            raise JobsError("the jobs service answered with something that is not an explanation")
        return cls(
            state=data.get("state"),
            summary=str(data.get("summary") or ""),
            details=[str(line) for line in data.get("details") or []],
            suggestions=[str(line) for line in data.get("suggestions") or []],
        )


class LogStream:
    """The body of a followed log stream: iterate for lines (without their newline), then close."""

    def __init__(self, response: http.client.HTTPResponse, describe: str) -> None:
        self._response = response
        self._describe = describe

    def __iter__(self) -> Iterator[str]:
        try:
            while True:
                # readline returns each line as soon as it has arrived, chunked or not
                raw = self._response.readline()
                if not raw:
                    return
                if raw.endswith(b"\n"):
                    raw = raw[:-1]
                yield raw.decode("utf-8", errors="replace")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise JobsError(f"the log stream of {self._describe} was cut", _reason(exc)) from None

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> LogStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JobsClient:
    """Calls the jobs service's API on behalf of this notebook server."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = REQUEST_TIMEOUT) -> None:
        if not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.api_url = urllib.parse.urljoin(base_url, "api/")
        self.token = token
        self.timeout = timeout

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> JobsClient:
        base_url = environ.get(JOBS_URL_ENV, "").strip()
        if not base_url and environ.get(JOBS_OFF_ENV):
            raise JobsError("jobs are off on this platform", environ[JOBS_OFF_ENV])
        if not base_url:
            raise JobsError("this is not a lavahub workspace", f"{JOBS_URL_ENV} is not set")
        return cls(base_url, environ.get(TOKEN_ENV) or None)

    # -- endpoints -------------------------------------------------------------

    def submit(self, request: JobRequest) -> Job:
        """``POST api/jobs``: start a job; answers the new job."""
        return Job.from_json(self._json("POST", "jobs", body=dict(request)))

    def list_jobs(self) -> list[Job]:
        """``GET api/jobs``: the caller's jobs, newest first."""
        answer = self._json("GET", "jobs")
        jobs = answer.get("jobs") if isinstance(answer, Mapping) else None
        if not isinstance(jobs, list):
            raise JobsError("the jobs service answered with something that is not a list of jobs")
        return [Job.from_json(job) for job in jobs]

    def get_job(self, job_id: str) -> Job:
        """``GET api/jobs/{id}``."""
        return Job.from_json(self._json("GET", _job_path(job_id)))

    def cancel_job(self, job_id: str) -> Job:
        """``DELETE api/jobs/{id}``: cancel the job; answers it as it is now."""
        return Job.from_json(self._json("DELETE", _job_path(job_id)))

    def logs(self, job_id: str, since: int = 0) -> list[str]:
        """``GET api/jobs/{id}/logs``: the log lines that exist now, from line ``since`` on."""
        with self._open("GET", _job_path(job_id, "logs"), query={"since": since}) as response:
            text = _read(response).decode("utf-8", errors="replace")
        # lines end with "\n" only: a "\r" inside a line (a progress bar) stays in it
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return lines

    def follow_logs(self, job_id: str, since: int = 0, *, timeout: float = STREAM_TIMEOUT) -> LogStream:
        """``GET api/jobs/{id}/logs?follow=true``: lines as they arrive; ends when the job has ended."""
        response = self._open(
            "GET", _job_path(job_id, "logs"), query={"follow": "true", "since": since}, timeout=timeout
        )
        return LogStream(response, f"job {job_id}")

    def explain(self, job_id: str) -> Explanation:
        """``GET api/jobs/{id}/explain``: why the job is pending, or why it failed."""
        return Explanation.from_json(self._json("GET", _job_path(job_id, "explain")))

    def result(self, job_id: str) -> str:
        """``GET api/jobs/{id}/result``: the base64 of the cloudpickled value rank 0 sent back."""
        answer = self._json("GET", _job_path(job_id, "result"))
        value = answer.get("result") if isinstance(answer, Mapping) else None
        if not isinstance(value, str):
            raise JobsError(f"the jobs service sent no result for job {job_id}")
        return value

    # -- plumbing --------------------------------------------------------------

    def _json(self, method: str, path: str, *, body: Any = None) -> Any:
        with self._open(method, path, body=body) as response:
            raw = _read(response)
        try:
            return json.loads(raw)
        except ValueError:
            raise JobsError(
                f"the jobs service answered {method} {path} with something that is not JSON",
                f"is {JOBS_URL_ENV}={self.base_url} right?",
            ) from None

    def _open(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, object] | None = None,
        timeout: float | None = None,
    ) -> http.client.HTTPResponse:
        url = urllib.parse.urljoin(self.api_url, path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        headers = {}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc, method, path) from None
        except urllib.error.URLError as exc:
            raise JobsError(
                f"cannot reach the jobs service at {self.base_url}", _reason(exc.reason)
            ) from None
        except TimeoutError:
            raise JobsError(
                f"the jobs service at {self.base_url} did not answer within {timeout or self.timeout:g} s",
                "try again in a moment",
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise JobsError(
                f"lost the connection to the jobs service at {self.base_url}", _reason(exc)
            ) from None


def _job_path(job_id: str, *rest: str) -> str:
    if not re.fullmatch(JOB_ID_PATTERN, job_id):
        raise JobsError(f"{job_id!r} is not a job id", "a job id is 16 hexadecimal digits; %jobs lists yours")
    return "/".join(["jobs", job_id, *rest])


def _read(response: http.client.HTTPResponse) -> bytes:
    try:
        return response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise JobsError("lost the connection to the jobs service", _reason(exc)) from None


def _reason(exc: object) -> str:
    return str(exc) or type(exc).__name__


_DEFAULT_HINTS = {
    401: "the notebook server's JUPYTERHUB_API_TOKEN was not accepted; restart the workspace",
    403: "this workspace's token may not use the jobs service; ask an admin",
    404: "is the job id right? %jobs lists yours",
    502: "the jobs service is not running; try again in a moment or ask an admin",
    503: "the jobs service is not running; try again in a moment or ask an admin",
}


def _http_error(exc: urllib.error.HTTPError, method: str, path: str) -> JobsError:
    """Turn an error answer into a JobsError, preferring the service's own words."""
    try:
        body = json.loads(exc.read() or b"null")
    except (ValueError, OSError, http.client.HTTPException):
        body = None
    finally:
        exc.close()
    if isinstance(body, Mapping) and body.get("error"):
        return JobsError(str(body["error"]), body.get("hint") or None, exc.code)
    return JobsError(
        f"the jobs service answered {method} {path} with {exc.code} {exc.reason}",
        _DEFAULT_HINTS.get(exc.code),
        exc.code,
    )

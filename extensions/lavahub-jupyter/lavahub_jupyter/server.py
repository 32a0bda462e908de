"""The Jupyter server extension: the lab frontend's way to the jobs service, and the GPU status.

Every request to ``<base_url>lavahub/api/<path>`` is forwarded to the jobs
service's ``api/<path>`` **as the person using the page**: with the token their
request carries (under JupyterHub, the OAuth token of their login to this
server), never the server's own ``JUPYTERHUB_API_TOKEN``. So a visitor of a
shared server acts as themselves, and sees their own jobs, not the owner's.
The service's answers, errors included, pass through unchanged; what goes wrong
on the way is a JSON error of the service's shape ``{"error", "hint"}``.

``<base_url>lavahub/gpus`` reports the utilization and memory of this
workspace's GPUs (empty without any), and ``<base_url>lavahub/workspace`` the
template and project the workspace was started with, the defaults of a job.
``<base_url>lavahub/openapi.json`` documents all of it (`openapi.py`).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any
from urllib.parse import urljoin

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import httpclient, iostream, web

from .client import JOBS_OFF_ENV, JOBS_URL_ENV, JobsClient, JobsError
from .gpus import workspace_gpus
from .openapi import server_document

# only the jobs API's own routes travel (services/jobs/openapi.py), nothing else of the service
API_PATH = r"(options|jobs|jobs/[0-9a-f]{16}|jobs/[0-9a-f]{16}/(?:logs|explain|result))"
FOLLOW = re.compile(r"(?:^|&)follow=(?:1|true)(?:&|$)")

REQUEST_TIMEOUT = 30.0
FOLLOW_TIMEOUT = 24 * 3600.0  # a followed log stays open while its job runs


def visiting_token(handler: web.RequestHandler) -> str | None:
    """The token of the person making this request, or None where there is no hub.

    JupyterHub's identity provider keeps the token of the visitor's OAuth login
    (or takes the one they sent in the header); that is who acts, whoever owns
    the server.
    """
    hub_auth = getattr(getattr(handler, "identity_provider", None), "hub_auth", None)
    if hub_auth is None:
        return None
    token = hub_auth.get_token(handler)
    return token or None


class LavahubHandler(APIHandler):
    def fail(self, status: int, error: str, hint: str | None = None) -> None:
        """An error in the jobs service's own shape, so the frontend reads every error one way."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"error": error, "hint": hint}))

    def jobs_api(self) -> str | None:
        """The jobs API's URL, from the workspace's environment as the magic reads it; None (and a
        503 said) where the platform runs no jobs."""
        try:
            return JobsClient.from_env(os.environ).api_url
        except JobsError as e:
            self.fail(503, "Jobs are off on this platform.", e.hint)
            return None


class JobsApiHandler(LavahubHandler):
    """Forwards one jobs API call, as the visitor; a followed log is passed on as it arrives."""

    @web.authenticated
    async def get(self, path: str) -> None:
        await self._forward("GET", path)

    @web.authenticated
    async def post(self, path: str) -> None:
        await self._forward("POST", path)

    @web.authenticated
    async def delete(self, path: str) -> None:
        await self._forward("DELETE", path)

    async def _forward(self, method: str, path: str) -> None:
        api = self.jobs_api()
        if api is None:
            return
        token = visiting_token(self)
        if token is None:
            return self.fail(
                403,
                "Jobs are run through JupyterHub: this server was not started by a hub.",
                "open JupyterLab from the lavahub hub",
            )
        url = urljoin(api, path)
        if self.request.query:
            url += "?" + self.request.query
        follow = path.endswith("/logs") and bool(FOLLOW.search(self.request.query))
        request = httpclient.HTTPRequest(
            url,
            method=method,
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            body=self.request.body if method == "POST" else None,
            request_timeout=FOLLOW_TIMEOUT if follow else REQUEST_TIMEOUT,
            connect_timeout=REQUEST_TIMEOUT,
            header_callback=self._on_header if follow else None,
            streaming_callback=self._on_chunk if follow else None,
        )
        self._passed_on = False  # a followed log's first chunk went on: the status is sent
        self._upstream_status = 200
        self._upstream_kind = ""
        self._error_body = b""
        try:
            response = await httpclient.AsyncHTTPClient().fetch(request, raise_error=False)
        except _VisitorLeft:
            return
        except (OSError, httpclient.HTTPClientError) as e:
            if not self._passed_on:
                return self.fail(502, "The jobs service could not be reached.", str(e))
            self.finish()  # the stream was cut after it began: the viewer reconnects with since=
            return
        if self._passed_on:
            self.finish()
            return
        if response.code >= 599:
            return self.fail(502, "The jobs service could not be reached.", str(response.error))
        if follow:
            self._pass_on(response.code, self._upstream_kind, self._error_body)
        else:
            self._pass_on(response.code, response.headers.get("Content-Type", ""), response.body or b"")

    def _pass_on(self, status: int, kind: str, body: bytes) -> None:
        if status >= 400 and not kind.startswith("application/json"):
            return self.fail(502, f"The jobs service answered {status} without saying why.")
        self.set_status(status)
        self.set_header("Content-Type", kind or "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)

    # -- a followed log: each chunk goes on as it comes --------------------------------

    def _on_header(self, line: str) -> None:
        if line.startswith("HTTP/"):
            self._upstream_status = int(line.split()[1])
        elif line.lower().startswith("content-type:"):
            self._upstream_kind = line.split(":", 1)[1].strip()

    def _on_chunk(self, chunk: bytes) -> None:
        if self._upstream_status != 200:  # an error's body is small: keep it and answer it whole
            self._error_body += chunk
            return
        if self.request.connection.stream.closed():  # type: ignore[union-attr]
            raise _VisitorLeft
        if not self._passed_on:
            self._passed_on = True
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.set_header("X-Accel-Buffering", "no")
        self.write(chunk)
        try:
            self.flush()
        except iostream.StreamClosedError:
            raise _VisitorLeft from None


class _VisitorLeft(Exception):
    """The browser closed a followed log: stop reading it from the service."""


class OpenAPIHandler(LavahubHandler):
    """The extension's document, built on the jobs service's (whose operations it forwards)."""

    @web.authenticated
    async def get(self) -> None:
        api = self.jobs_api()
        if api is None:
            return
        try:
            response = await httpclient.AsyncHTTPClient().fetch(
                urljoin(api, "openapi.json"), request_timeout=REQUEST_TIMEOUT
            )
            jobs = json.loads(response.body)
        except (OSError, ValueError, httpclient.HTTPClientError) as e:
            return self.fail(502, "The jobs service's API document could not be read.", str(e))
        self.finish(server_document(jobs, self.base_url))


class GpusHandler(LavahubHandler):
    @web.authenticated
    def get(self) -> None:
        gpus = [gpu.to_dict() for gpu in workspace_gpus()]
        self.set_header("Cache-Control", "no-store")
        self.finish({"gpus": gpus})


class WorkspaceHandler(LavahubHandler):
    @web.authenticated
    def get(self) -> None:
        self.finish(
            {
                "template": os.environ.get("LAVAHUB_TEMPLATE") or None,
                "project": os.environ.get("LAVAHUB_PROJECT") or None,
                "jobs": bool(os.environ.get(JOBS_URL_ENV)),
                "jobs_off": os.environ.get(JOBS_OFF_ENV) or None,
            }
        )


def setup_handlers(web_app: Any) -> None:
    base = url_path_join(web_app.settings["base_url"], "lavahub")
    web_app.add_handlers(
        ".*$",
        [
            (url_path_join(base, "api", API_PATH), JobsApiHandler),
            (url_path_join(base, "openapi.json"), OpenAPIHandler),
            (url_path_join(base, "gpus"), GpusHandler),
            (url_path_join(base, "workspace"), WorkspaceHandler),
        ],
    )

"""What every lavahub hub service's JSON API shares: hub token auth and JSON errors.

A request carries a hub token (`Authorization: token ...`); the hub says whose it
is and whether it may reach this service. Every error is `{"error", "hint"}` with
its status; nothing else (no traceback) reaches a client.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import ParseResult, SplitResult

from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from tornado import httpclient, web

from spawner.errors import PublicError

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1


async def hub_get(hub_auth: HubAuth, path: str) -> Any:
    """GET the hub's REST API as the service itself (its own token and role)."""
    request = httpclient.HTTPRequest(
        f"{hub_auth.api_url}{path}", headers={"Authorization": f"token {hub_auth.api_token}"}
    )
    response = await httpclient.AsyncHTTPClient().fetch(request)
    return json.loads(response.body)


async def until_terminated() -> None:
    """Return at SIGTERM (the hub stopping its service) or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def stop_with_the_hub() -> None:
    """Get SIGTERM when the hub that started this service dies, even by SIGKILL.

    A service left running would keep its port, and the restarted hub's new service could
    not listen there (and the old one's hub token is no longer valid)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the hub was already gone
        os.kill(os.getpid(), signal.SIGTERM)


def listen_address(url: SplitResult | ParseResult) -> str:
    """Where a hub-managed service listens: its URL's host (loopback), or LAVAHUB_SERVICE_LISTEN on
    Kubernetes, where its URL names the hub's Service, which the proxy's and workspaces' pods reach."""
    return os.environ.get("LAVAHUB_SERVICE_LISTEN") or url.hostname or "127.0.0.1"


def run_service(name: str, serve: Callable[[], Coroutine[Any, Any, None]]) -> int:
    """A hub-managed service's main: its log format, and a config error as one line, status 2."""
    logging.basicConfig(
        level=logging.INFO, format=f"[%(levelname)1.1s %(asctime)s {name} %(name)s] %(message)s"
    )
    stop_with_the_hub()
    try:
        asyncio.run(serve())
    except PublicError as e:
        print(f"lavahub {name}: error: {e}", file=sys.stderr)
        return 2
    return 0


class ApiError(PublicError):
    def __init__(self, status: int, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message, hint=hint, field=field)
        self.status = status


class JsonApiHandler(HubAuthenticated, web.RequestHandler):
    """Token-authenticated JSON handler; subclasses name their service in `service`."""

    service = "lavahub"
    user_model: dict[str, Any]

    @property
    def hub_auth(self) -> HubAuth:
        return self.settings["hub_auth"]

    def check_xsrf_cookie(self) -> None:
        """Token authentication only: nothing here acts on a browser cookie."""

    async def prepare(self) -> None:
        token = self.hub_auth.get_token(self, in_cookie=False)
        model = await self.hub_auth.user_for_token(token, sync=False) if token else None
        if not model or model.get("kind", "user") != "user":
            raise ApiError(
                401,
                "Authentication required.",
                hint="send 'Authorization: token <your JUPYTERHUB_API_TOKEN>'",
            )
        try:
            self.check_hub_user(model)
        except UserNotAllowed:
            raise ApiError(
                403,
                f"{model['name']} may not use the {self.service} service.",
                hint=f"the token needs the scope access:services!service={self.service}",
            ) from None
        self.user_model = model

    def body_json(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError:
            raise ApiError(400, "The request body is not JSON.") from None

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if isinstance(value, PublicError):
            log.info("%s %r refused: %r", self.request.method, self.request.path, str(value))
        else:
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            status, body = error.status, error.to_json()
        elif isinstance(error, PublicError):
            status, body = 400, error.to_json()
        elif isinstance(error, web.HTTPError) and status_code < 500:
            status, body = status_code, {"error": error.log_message or self._reason}
        else:
            status, body = (
                500,
                {
                    "error": f"Internal error in the {self.service} service.",
                    "hint": "the service log has details",
                },
            )
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class NotFoundHandler(JsonApiHandler):
    async def prepare(self) -> None:
        raise ApiError(
            404,
            f"No such endpoint: {self.request.method} {self.request.path}",
            hint="GET api/openapi.json describes this API" if self.settings.get("openapi") else None,
        )

"""A small real OpenID Connect provider on loopback, for the hub's `auth.type: oauth` tests.

It speaks the authorization-code flow as a provider does: a discovery document, an authorize
endpoint (which approves at once, as the user `next_user` names), a token endpoint (client
authentication by form or HTTP Basic, the redirect URI and PKCE S256 checked, each code used
once) and a userinfo endpoint (bearer tokens). The hub's client is never patched: it meets this
provider over HTTP, as it would a real one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlencode

from tornado.httpserver import HTTPServer
from tornado.web import Application, HTTPError, RequestHandler

from tests.hubclient import free_port


@dataclass
class Person:
    username: str
    groups: tuple[str, ...] = ()

    def claims(self) -> dict[str, Any]:
        return {"sub": f"id-{self.username}", "preferred_username": self.username,
                "email": f"{self.username}@example.org", "groups": list(self.groups)}  # fmt: skip


@dataclass
class Provider:
    client_id: str = "lavahub"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    redirect_uri: str = ""  # registered once the hub's address is known
    next_user: Person = field(default_factory=lambda: Person("alice"))
    port: int = field(default_factory=free_port)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, Person] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)  # "GET /authorize", ... in order
    pkce: list[bool] = field(default_factory=list)  # per code exchanged: whether PKCE was checked

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            app = Application([
                (r"/.well-known/openid-configuration", Discovery, {"provider": self}),
                (r"/authorize", Authorize, {"provider": self}),
                (r"/token", Token, {"provider": self}),
                (r"/userinfo", UserInfo, {"provider": self}),
            ])  # fmt: skip
            self._server = HTTPServer(app)
            self._server.listen(self.port, "127.0.0.1")
            self._loop.call_soon(ready.set)
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._server.stop)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class Endpoint(RequestHandler):
    def initialize(self, provider: Provider) -> None:
        self.provider = provider

    def prepare(self) -> None:
        self.provider.requests.append(f"{self.request.method} {self.request.path}")

    def refuse(self, status: int, error: str) -> NoReturn:
        raise HTTPError(status, reason=error)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": self._reason})  # OAuth's error body: {"error": "invalid_grant"}


class Discovery(Endpoint):
    def get(self) -> None:
        base = self.provider.issuer
        self.finish({
            "issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "userinfo_endpoint": f"{base}/userinfo", "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["S256"], "scopes_supported": ["openid", "profile", "email"],
        })  # fmt: skip


class Authorize(Endpoint):
    def get(self) -> None:
        provider = self.provider
        arg = self.get_query_argument
        if arg("client_id", "") != provider.client_id or arg("response_type", "") != "code":
            self.refuse(400, "unauthorized_client")
        if not provider.redirect_uri or arg("redirect_uri", "") != provider.redirect_uri:
            self.refuse(400, "invalid_redirect_uri")  # never redirect to an unregistered address
        if "openid" not in arg("scope", "").split():
            self.refuse(400, "invalid_scope")
        code = secrets.token_urlsafe(16)
        provider.codes[code] = {
            "person": provider.next_user,
            "redirect_uri": provider.redirect_uri,
            "challenge": arg("code_challenge", None),
            "method": arg("code_challenge_method", None),
        }
        self.redirect(f"{provider.redirect_uri}?{urlencode({'code': code, 'state': arg('state', '')})}")


class Token(Endpoint):
    def post(self) -> None:
        provider = self.provider
        body = self.get_body_argument
        client_id, secret = body("client_id", ""), body("client_secret", "")
        header = self.request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if client_id != provider.client_id or not secrets.compare_digest(secret, provider.client_secret):
            self.refuse(401, "invalid_client")
        if self.get_body_argument("grant_type", "") != "authorization_code":
            self.refuse(400, "unsupported_grant_type")
        grant = provider.codes.pop(self.get_body_argument("code", ""), None)  # a code is used once
        if grant is None or self.get_body_argument("redirect_uri", "") != grant["redirect_uri"]:
            self.refuse(400, "invalid_grant")
        if grant["challenge"] is not None:
            verifier = hashlib.sha256(self.get_body_argument("code_verifier", "").encode()).digest()
            digest = base64.urlsafe_b64encode(verifier).rstrip(b"=").decode()
            if grant["method"] != "S256" or digest != grant["challenge"]:
                self.refuse(400, "invalid_grant")
        provider.pkce.append(grant["challenge"] is not None)
        token = secrets.token_urlsafe(24)
        provider.tokens[token] = grant["person"]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                "scope": "openid profile email"}))  # fmt: skip


class UserInfo(Endpoint):
    def get(self) -> None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        person = self.provider.tokens.get(token) if scheme == "Bearer" else None
        if person is None:
            self.refuse(401, "invalid_token")
        self.finish(person.claims())

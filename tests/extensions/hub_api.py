"""The part of JupyterHub's REST API a hub service relies on, served on loopback for tests.

`HubAuth` asks `GET /hub/api/user` with the caller's token; the jobs service asks
`GET /hub/api/groups/<name>` with its own token for a project's properties. The
answers have the hub's shapes; a token the hub does not accept gets its 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from tornado import httpserver, netutil, web

from spawner.projects import Project

TOKEN = re.compile(r"(?:token|bearer)\s+(.+)", re.IGNORECASE)


def user_model(name: str, groups: Iterable[str], *, admin: bool = False, scopes: Iterable[str] = ()) -> dict:
    """A user as `GET /hub/api/user` describes the owner of a token."""
    return {
        "kind": "user",
        "name": name,
        "admin": admin,
        "groups": sorted(groups),
        "scopes": sorted({*scopes, f"read:users:name!user={name}"}),
        "server": f"/user/{name}/",
        "session_id": None,
    }


def group_model(project: Project) -> dict:
    """A project's group as `GET /hub/api/groups/<name>` shows it: members and lavahub's properties."""
    return {
        "kind": "group",
        "name": project.name,
        "users": list(project.members),
        "properties": project.to_properties(),
        "roles": [],
    }


class TestHub:
    """Answers for the tokens in `users` (token -> user model) and the groups of `projects`."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, users: Mapping[str, dict], projects: Mapping[str, Project], service_token: str):
        self.users = dict(users)
        self.groups = {name: group_model(project) for name, project in projects.items()}
        self.service_token = service_token
        self.asked: list[str] = []  # the paths asked, in order
        self._server: httpserver.HTTPServer | None = None

    def listen(self) -> str:
        """Serve on a free loopback port (on the running loop); answer the API's URL."""
        app = web.Application(
            [(r"/hub/api/user", _UserHandler), (r"/hub/api/groups/([^/]+)", _GroupHandler)], hub=self
        )
        sockets = netutil.bind_sockets(0, "127.0.0.1")
        self._server = httpserver.HTTPServer(app)
        self._server.add_sockets(sockets)
        return f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hub/api"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()


class _HubHandler(web.RequestHandler):
    @property
    def hub(self) -> TestHub:
        hub: TestHub = self.settings["hub"]
        return hub

    def prepare(self) -> None:
        self.hub.asked.append(self.request.path)

    def token(self) -> str | None:
        found = TOKEN.match(self.request.headers.get("Authorization", ""))
        return found.group(1) if found else None

    def answer(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.finish(body)

    def forbidden(self) -> None:
        self.answer(403, {"status": 403, "message": "Forbidden"})


class _UserHandler(_HubHandler):
    def get(self) -> None:
        model = self.hub.users.get(self.token() or "")
        if model is None:
            return self.forbidden()
        self.answer(200, model)


class _GroupHandler(_HubHandler):
    def get(self, name: str) -> None:
        if self.token() != self.hub.service_token:
            return self.forbidden()
        group = self.hub.groups.get(name)
        if group is None:
            return self.answer(404, {"status": 404, "message": f"No such group: {name}"})
        self.answer(200, group)

"""Who may call what: an authorization matrix over every route, on the real platform.

The routes are generated, not listed: the jobs service's from the OpenAPI document it
serves (every path x method), the templates service's API from its route table
(`services.templates.app.routes`, each handler's methods), and the hub's own user
endpoints. Each is called by every kind of caller (`CALLERS`), each with a hub token the
user made for themselves, and its answer checked against one table (`EXPECTED`). A
refused request that would change something must leave it as it was.

Logging in as another user with your own password is covered, on a real hub, by
`tests/integration/test_local_auth.py`; this module starts from tokens.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from tornado import web

from services.jobs.app import routes as jobs_routes
from services.templates import api as templates_api
from services.templates.app import routes as templates_routes
from tests.hubclient import HubClient
from tests.integration.conftest import JOBS_PLATFORM, PLATFORM, Platform, RayCluster, start_platform

pytestmark = pytest.mark.integration

# Callers, and what each is. Everyone but anonymous logs in with their own password.
CALLERS = ("anonymous", "alice", "bob", "dave", "carol", "admin")
ABOUT = {
    "anonymous": "no token",
    "alice": "the owner: alice's jobs, server and tokens; member of default and vision",
    "bob": "another user, member of default only",
    "dave": "a non-member of default and vision (member of audio only)",
    "carol": "a template admin (templates_service.admins), member of default",
    "admin": "the hub admin",
}
PROJECTS = PLATFORM["projects"]
MATRIX_PLATFORM = {
    **JOBS_PLATFORM,
    "auth": {"type": "local"},  # the default: every user their own password
    "projects": {
        "default": {**PROJECTS["default"], "members": [*PROJECTS["default"]["members"], "carol"]},
        "vision": PROJECTS["vision"],
        "audio": {"members": ["dave"], "quota": {"cpus": 1}},
    },
    "templates_service": {"admins": ["carol"]},
}

OK = "2xx"
# One row per route, one column per caller: the status each gets. Routes are generated (see
# `routes`); the test fails if a route has no row here, or a row no route.
# 401: no token (the services); 403: the hub's answer to no token, a write to templates without
# the admin scope, another user's server (JupyterLab) or a token for another user (the hub);
# 404: someone else's job, a template outside your projects, another user's model, tokens or
# server (the hub hides them); 400: a job for a project you are not in (the answer names it).
# fmt: off
EXPECTED: dict[str, tuple[int | str, ...]] = {
    #                                          anonymous alice bob  dave carol admin
    "jobs GET /jobs":                          (401,     OK,   OK,  OK,  OK,   OK),
    "jobs GET /jobs?all=true":                 (401,     403,  403, 403, 403,  OK),
    "jobs POST /jobs":                         (401,     OK,   400, 400, 400,  OK),
    "jobs GET /jobs/{id}":                     (401,     OK,   404, 404, 404,  OK),
    "jobs DELETE /jobs/{id}":                  (401,     OK,   404, 404, 404,  OK),
    "jobs GET /jobs/{id}/logs":                (401,     OK,   404, 404, 404,  OK),
    "jobs GET /jobs/{id}/explain":             (401,     OK,   404, 404, 404,  OK),
    "jobs GET /jobs/{id}/result":              (401,     OK,   404, 404, 404,  OK),
    "jobs GET /options":                       (401,     OK,   OK,  OK,  OK,   OK),
    "templates GET /api/":                     (OK,      OK,   OK,  OK,  OK,   OK),
    "templates GET /api/templates":            (401,     OK,   OK,  OK,  OK,   OK),
    "templates POST /api/templates":           (401,     403,  403, 403, OK,   OK),
    "templates GET /api/templates/{slug}":     (401,     OK,   404, 404, OK,   OK),
    "templates PUT /api/templates/{slug}":     (401,     403,  403, 403, OK,   OK),
    "templates PATCH /api/templates/{slug}":   (401,     403,  403, 403, OK,   OK),
    "templates DELETE /api/templates/{slug}":  (401,     403,  403, 403, OK,   OK),
    "templates GET /api/templates/{slug}/history":   (401, 403, 403, 403, OK,  OK),
    "templates POST /api/templates/{slug}/rollback": (401, 403, 403, 403, OK,  OK),
    "hub GET /hub/api/users/{name}":           (403,     OK,   404, 404, 404,  OK),
    "hub GET /hub/api/users/{name}/tokens":    (403,     OK,   404, 404, 404,  OK),
    "hub POST /hub/api/users/{name}/tokens":   (403,     OK,   403, 403, 403,  OK),
    "hub GET /user/{name}/api/status":         (403,     OK,   403, 403, 403,  OK),
    "hub POST /hub/api/users/{name}/server":   (403,     OK,   404, 404, 404,  OK),
    "hub DELETE /hub/api/users/{name}/server": (403,     OK,   404, 404, 404,  OK),
}
# fmt: on

# The hub's own user endpoints (the hub has no document of its routes to generate them from),
# each with what alice's server must be doing when it is called.
HUB_ROUTES = [
    ("GET", "/hub/api/users/{name}", None),
    ("GET", "/hub/api/users/{name}/tokens", None),
    ("POST", "/hub/api/users/{name}/tokens", None),
    ("GET", "/user/{name}/api/status", "running"),
    ("POST", "/hub/api/users/{name}/server", "stopped"),
    ("DELETE", "/hub/api/users/{name}/server", "running"),
]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
JOBS_SCOPE = "access:services!service=jobs"  # what a workspace's own token carries for the service
SLEEP = "import time\ntime.sleep(600)\n"


@dataclass(frozen=True)
class Route:
    service: str  # jobs, templates, hub
    method: str
    path: str  # with {id}, {slug} or {name}
    query: str = ""
    server: str | None = None  # alice's server must be "running" or "stopped"

    @property
    def key(self) -> str:
        return f"{self.service} {self.method} {self.path}{'?' + self.query if self.query else ''}"

    @property
    def mutating(self) -> bool:
        return self.method != "GET"


def jobs_api_routes(document: dict[str, Any]) -> list[Route]:
    """Every path x method the jobs service documents, and each admins-only query variant."""
    found: list[Route] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            found.append(Route("jobs", method.upper(), path))
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter.get("description", "").startswith("admins:"):
                    found.append(Route("jobs", method.upper(), path, query=f"{parameter['name']}=true"))
    return found


def handler_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The HTTP methods a tornado handler answers: those it defines itself."""
    return [m for m in METHODS if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())]


def api_route_table(table: list[tuple[str, type[web.RequestHandler]]], prefix: str) -> list[tuple[str, str]]:
    """(method, path) of each API route of a service's route table, its regex groups named."""
    found: list[tuple[str, str]] = []
    for pattern, handler in table:
        path = pattern.removeprefix(prefix.rstrip("/"))
        if not path.startswith("/api/") or path.endswith("/.*"):
            continue
        path = path.replace("/?", "/").replace("/api/jobs/([0-9a-f]{16})", "/api/jobs/{id}")
        path = re.sub(r"\(\[a-z0-9\][^)]*\)", "{slug}", path)
        found.extend((method, path) for method in handler_methods(handler))
    return found


def templates_api_routes() -> list[Route]:
    return [
        Route("templates", method, path)
        for method, path in api_route_table(templates_routes("/services/templates/"), "/services/templates/")
    ]


def hub_routes() -> list[Route]:
    return [Route("hub", method, path, server=server) for method, path, server in HUB_ROUTES]


@dataclass
class Cell:
    route: Route
    caller: str
    expected: int | str
    status: int
    refused_unchanged: bool | None = None  # a refused mutation: checked unchanged
    leaks: list[str] = field(default_factory=list)  # what the answer shows that the caller may not see

    @property
    def allowed(self) -> bool:
        return 200 <= self.status < 300

    @property
    def as_expected(self) -> bool:
        return self.allowed if self.expected == OK else self.status == self.expected


@dataclass
class World:
    """The platform, every caller's tokens, and the things the routes act on."""

    platform: Platform
    clients: dict[str, HubClient]
    hub_tokens: dict[str, str]
    jobs_tokens: dict[str, str]
    done_job: str = ""  # alice's, succeeded, with a result
    running_job: str = ""  # alice's, running (what refused cancels must leave running)
    submitted: list[str] = field(default_factory=list)
    probes: int = 0

    @property
    def admin(self) -> HubClient:
        return self.clients["admin"]

    @property
    def alice(self) -> HubClient:
        return self.clients["alice"]

    # --- alice's server ---
    def alice_server(self) -> dict[str, Any] | None:
        return self.admin.api("GET", "users/alice").json().get("servers", {}).get("")

    def ensure_server(self, wanted: str | None) -> None:
        entry = self.alice_server()
        running = bool(entry and (entry.get("ready") or entry.get("pending")))
        if wanted == "running" and not (entry and entry.get("ready")):
            if not running:
                assert self.alice.spawn("", {"template": "python", "project": "default"}).status_code in (
                    201,
                    202,
                )
            self.alice.wait_ready("")
        elif wanted == "stopped" and running:
            self.wait_server_settled()
            self.alice.stop("")

    def wait_server_settled(self, timeout: float = 90) -> None:
        """An allowed POST or DELETE left the server starting or stopping: wait until it has."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.alice_server()
            if not entry or not entry.get("pending"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"alice's server still pending: {entry}")

    # --- jobs ---
    def job(self, job_id: str) -> dict[str, Any]:
        return self.alice.jobs("GET", f"/{job_id}").json()

    def wait_job(self, job_id: str, states: set[str], timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] in states:
                return job
            time.sleep(0.2)
        raise TimeoutError(f"job {job_id} not {states}: {job}")

    def new_running_job(self) -> str:
        job = self.alice.jobs("POST", json={"code": SLEEP, "name": "target"}).json()
        self.submitted.append(job["id"])
        self.wait_job(job["id"], {"running"})
        return str(job["id"])

    # --- templates ---
    def new_probe_template(self) -> str:
        """A template of vision's only (alice sees it, bob and dave do not), at version 2."""
        self.probes += 1
        slug = f"probe-{self.probes}"
        body = {"slug": slug, "image": "python:3.12", "projects": ["vision"]}
        assert self.admin.templates("POST", json=body).status_code == 201
        assert self.admin.templates("PATCH", f"/{slug}", json={"max_cpus": 2}).status_code == 200
        return slug

    def template_state(self, slug: str) -> Any:
        seen = self.admin.templates("GET", f"/{slug}")
        history = self.admin.templates("GET", f"/{slug}/history")
        return seen.status_code, seen.json() if seen.status_code == 200 else None, history.text


def token_for(platform: Platform, client: HubClient, scopes: list[str] | None) -> str:
    """A token the user makes for themselves with their login session (as HubClient does)."""
    xsrf = client.session.cookies.get("_xsrf", path="/hub/")
    body: dict[str, Any] = {"note": "authorization matrix", "expires_in": 3600}
    if scopes is not None:
        body["scopes"] = scopes
    response = client.session.post(
        f"{platform.url}/hub/api/users/{client.user}/tokens", json=body,
        headers={"X-XSRFToken": xsrf}, timeout=10,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, ray_cluster: RayCluster) -> Iterator[World]:
    platform = start_platform(tmp_path_factory.mktemp("matrix"), MATRIX_PLATFORM, ray_cluster)
    try:
        clients = {name: platform.client(name) for name in CALLERS if name != "anonymous"}
        deadline = time.monotonic() + 60  # the hub starts its services after it answers
        while (
            clients["admin"].templates("GET").status_code != 200
            or clients["admin"].jobs("GET").status_code != 200
        ):
            assert time.monotonic() < deadline, "the services did not answer"
            time.sleep(0.5)
        world = World(
            platform,
            clients,
            hub_tokens={name: token_for(platform, c, None) for name, c in clients.items()},
            # what a workspace's own token carries, and nothing else
            jobs_tokens={name: token_for(platform, c, [JOBS_SCOPE]) for name, c in clients.items()},
        )  # fmt: skip
        done = world.alice.jobs("POST", json={"code": "y = 41 + 1\nprint(y)\n", "result": "y"}).json()
        world.done_job = done["id"]
        assert world.wait_job(world.done_job, {"succeeded", "failed"})["state"] == "succeeded"
        world.running_job = world.new_running_job()
        yield world
        for job_id in world.submitted:
            world.admin.jobs("DELETE", f"/{job_id}")
        world.ensure_server("stopped")
    finally:
        platform.stop()


@dataclass
class Request:
    url: str
    body: Any = None
    observe: Callable[[], Any] | None = None  # what a mutation would change


def jobs_request(world: World, route: Route) -> Request:
    if route.method == "DELETE":
        job_id = world.running_job  # a refused cancel must leave it running

        def job_state() -> Any:
            return {k: world.job(job_id)[k] for k in ("state", "reason", "finished")}

        return Request(
            f"{world.platform.url}/services/jobs/api{route.path}".replace("{id}", job_id), None, job_state
        )
    url = f"{world.platform.url}/services/jobs/api{route.path}".replace("{id}", world.done_job)
    if route.method != "POST":
        return Request(url)

    def every_job() -> Any:
        return sorted(j["id"] for j in world.admin.jobs("GET", params={"all": "true"}).json()["jobs"])

    return Request(url, {"code": "print('matrix')\n", "project": "vision"}, every_job)


def templates_request(world: World, route: Route, caller: str) -> Request:
    if not route.mutating:
        return Request(f"{world.platform.url}/services/templates{route.path}".replace("{slug}", "pytorch"))
    # each write gets a template of its own, so one caller's allowed write changes no other's call
    slug = f"new-{caller}" if route.path == "/api/templates" else world.new_probe_template()
    body = {
        "POST /api/templates": {"slug": slug, "image": "python:3.12", "projects": ["vision"]},
        "PUT /api/templates/{slug}": {"slug": slug, "image": "python:3.13", "projects": ["vision"]},
        "PATCH /api/templates/{slug}": {"max_cpus": 3},
        "POST /api/templates/{slug}/rollback": {"version": 1},
    }.get(f"{route.method} {route.path}")

    def template_state() -> Any:
        return world.template_state(slug)

    return Request(
        f"{world.platform.url}/services/templates{route.path}".replace("{slug}", slug), body, template_state
    )


def hub_request(world: World, route: Route, caller: str) -> Request:
    url = f"{world.platform.url}{route.path}".replace("{name}", "alice")

    def tokens() -> Any:
        return sorted(t["id"] for t in world.alice.api("GET", "users/alice/tokens").json()["api_tokens"])

    def server() -> Any:
        return {k: (world.alice_server() or {}).get(k) for k in ("ready", "pending", "started")}

    if route.path.endswith("/tokens"):
        return Request(url, {"note": f"made by {caller}", "expires_in": 600}, tokens)
    if route.path.endswith("/server"):
        return Request(
            url, {"template": "python", "project": "default"} if route.method == "POST" else None, server
        )
    return Request(url)


def call(world: World, route: Route, caller: str) -> Cell:
    """Make the call `route` as `caller`; for a refused mutation, check nothing changed."""
    world.ensure_server(route.server)
    tokens = world.jobs_tokens if route.service == "jobs" else world.hub_tokens
    headers = {"Authorization": f"token {tokens[caller]}"} if caller != "anonymous" else {}
    if route.service == "jobs":
        request = jobs_request(world, route)
    elif route.service == "templates":
        request = templates_request(world, route, caller)
    else:
        request = hub_request(world, route, caller)
    observe = request.observe if route.mutating else None
    before = observe() if observe else None
    url = request.url + ("?" + route.query if route.query else "")
    response = requests.request(
        route.method, url, headers=headers, json=request.body, timeout=30, allow_redirects=False
    )
    cell = Cell(route, caller, EXPECTED[route.key][CALLERS.index(caller)], response.status_code)
    if route.service == "jobs" and route.method == "POST" and cell.allowed:
        world.submitted.append(response.json()["id"])
    if observe and not cell.allowed:
        cell.refused_unchanged = observe() == before
    if cell.allowed and route.service == "hub" and route.path.endswith("/server"):
        world.wait_server_settled()
    if cell.allowed and route.service == "jobs" and route.method == "DELETE":
        world.running_job = world.new_running_job()  # the next caller gets a running one again
    # what a caller may not see is in no answer they get (a 404 may echo the id or slug they sent)
    if caller not in ("alice", "admin"):
        secrets = {world.done_job, world.running_job} - {url.split("/jobs/")[-1].split("/")[0]}
        cell.leaks += [f"alice's job {j}" for j in secrets if j in response.text]
    if route.service == "templates" and caller in ("anonymous", "bob", "dave") and "pytorch" not in url:
        cell.leaks += ["vision's template pytorch"] if "pytorch" in response.text else []
    return cell


def test_the_tables_name_every_route(world: World) -> None:
    """The matrix is generated: a route the services add must get a row, and every row a route."""
    document = requests.get(f"{world.platform.url}/services/jobs/api/openapi.json", timeout=10).json()
    generated = jobs_api_routes(document) + templates_api_routes() + hub_routes()
    assert sorted(route.key for route in generated) == sorted(EXPECTED)
    # the jobs service's document describes every API route it serves
    served = api_route_table(jobs_routes("/services/jobs/"), "/services/jobs/")
    documented = [(m.upper(), "/api" + p) for p, ops in document["paths"].items() for m in ops]
    assert sorted(served) == sorted([*documented, ("GET", "/api/openapi.json")])
    # and every templates API handler decides through the service's policy
    for _, handler in templates_routes("/services/templates/"):
        if handler.__module__ == templates_api.__name__ and handler is not templates_api.ApiRootHandler:
            assert issubclass(handler, templates_api.Handler), handler


def test_authorization_matrix(world: World) -> None:
    document = requests.get(f"{world.platform.url}/services/jobs/api/openapi.json", timeout=10).json()
    routes = jobs_api_routes(document) + templates_api_routes() + hub_routes()
    cells = [call(world, route, caller) for route in routes for caller in CALLERS]

    width = max(len(route.key) for route in routes)
    print(f"\n{'':{width}}  " + " ".join(f"{c:>9}" for c in CALLERS))
    for route in routes:
        row = [c for c in cells if c.route == route]
        print(
            f"{route.key:{width}}  " + " ".join(f"{c.status:>8}{' ' if c.as_expected else '!'}" for c in row)
        )
    refused = [c for c in cells if not c.allowed]
    mutations = [c for c in refused if c.refused_unchanged is not None]
    statuses = ", ".join(f"{s}: {n}" for s, n in sorted(Counter(c.status for c in refused).items()))
    unchanged = sum(bool(c.refused_unchanged) for c in mutations)
    print(
        f"authorization matrix: {len(routes)} routes x {len(CALLERS)} callers = {len(cells)} calls; "
        f"{len(refused)} refused ({statuses}); {len(mutations)} refused writes, {unchanged} changed nothing"
    )

    wrong = [
        f"{c.route.key} as {c.caller}: {c.status}, expected {c.expected}" for c in cells if not c.as_expected
    ]
    assert not wrong, "\n".join(wrong)
    changed = [f"{c.route.key} as {c.caller}" for c in mutations if not c.refused_unchanged]
    assert not changed, "refused, yet changed: " + ", ".join(changed)
    leaked = [f"{c.route.key} as {c.caller}: {', '.join(c.leaks)}" for c in cells if c.leaks]
    assert not leaked, "\n".join(leaked)


def test_what_a_caller_may_not_see_answers_as_what_does_not_exist(world: World) -> None:
    """A 404 for alice's job, or vision's template, tells bob no more than one for nothing at all."""
    bob = {"Authorization": f"token {world.jobs_tokens['bob']}"}
    jobs = f"{world.platform.url}/services/jobs/api/jobs"
    hidden = requests.get(f"{jobs}/{world.done_job}", headers=bob, timeout=10)
    missing = requests.get(f"{jobs}/{'0' * 16}", headers=bob, timeout=10)
    assert (hidden.status_code, hidden.text.replace(world.done_job, "ID")) == (
        missing.status_code,
        missing.text.replace("0" * 16, "ID"),
    )
    bob = {"Authorization": f"token {world.hub_tokens['bob']}"}
    templates = f"{world.platform.url}/services/templates/api/templates"
    hidden = requests.get(f"{templates}/pytorch", headers=bob, timeout=10)
    missing = requests.get(f"{templates}/no-such", headers=bob, timeout=10)
    assert (hidden.status_code, hidden.text.replace("pytorch", "SLUG")) == (
        missing.status_code,
        missing.text.replace("no-such", "SLUG"),
    )

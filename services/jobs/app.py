"""The `jobs` service's application: what the handlers share, and its routes.

The service knows jobs, their store, their logs and the caller's projects; how a
job runs is its backend's business (`backends/`), chosen by `jobs.backend`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado import httpclient, web

from spawner.errors import PublicError
from spawner.projects import Project, project_from_group
from spawner.resources import Quota
from spawner.store import TemplateStore
from spawner.volumes import Volume, kube_volume_plan, local_volume_plan

from ..api import NotFoundHandler, hub_get
from .backends.base import Backend
from .handlers import (
    ExplainHandler,
    JobHandler,
    JobsHandler,
    LogsHandler,
    OpenAPIHandler,
    OptionsHandler,
    ResultHandler,
    RootHandler,
)
from .logs import JobLogs
from .payloads import Payloads
from .spec import Caller
from .store import JobStore
from .supervisor import Supervisor

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 10
QUOTA_RETRY_SECONDS = 1.0


class Context:
    """What the handlers share: config, store, logs, backend, the hub's auth and group cache."""

    def __init__(self, config: Any, backend: Backend, hub_auth: HubAuth):
        self.config = config
        self.backend = backend
        self.hub_auth = hub_auth
        self.store = JobStore(config.database_url)
        self.templates = TemplateStore(config.database_url)
        caps = config.jobs.logs
        self.logs = JobLogs(config.job_logs_dir, max_bytes=caps.max_bytes, max_line_bytes=caps.max_line_bytes)
        self.payloads = Payloads(config.data_dir / "jobs")
        self.supervisor = Supervisor(
            self.store,
            backend,
            self.logs,
            self.payloads,
            max_pending=config.jobs.max_pending,
            quota_of=self.quota,
        )
        self._groups: dict[str, tuple[float, dict[str, Any]]] = {}
        self._quota_failed: dict[str, float] = {}  # when a project's group last could not be read

    async def project(self, name: str) -> Project | None:
        """A project's settings from the hub's group (cached briefly; membership comes from the user)."""
        cached = self._groups.get(name)
        if cached is None or time.monotonic() - cached[0] > GROUP_CACHE_SECONDS:
            try:
                group = await hub_get(self.hub_auth, f"/groups/{name}")
            except httpclient.HTTPClientError as e:
                log.warning("Cannot read group %r from the hub: %r", name, str(e))
                return None
            cached = (time.monotonic(), group)
            self._groups[name] = cached
        group = cached[1]
        try:
            return project_from_group(name, group.get("properties"), group.get("users", []))
        except PublicError:
            return None

    async def quota(self, name: str) -> Quota | None:
        """The project's quota as its group says it now; None while the group cannot be read
        (then asked again at most every QUOTA_RETRY_SECONDS: the supervisor asks every round)."""
        failed = self._quota_failed.get(name)
        if failed is not None and time.monotonic() - failed < QUOTA_RETRY_SECONDS:
            return None
        try:
            project = await self.project(name)
        except OSError as e:  # the hub does not answer at all
            log.warning("Cannot reach the hub for group %r: %r", name, str(e))
            project = None
        if project is None:
            self._quota_failed[name] = time.monotonic()
            return None
        self._quota_failed.pop(name, None)
        return project.quota

    def volumes(self, caller: Caller, project: str) -> tuple[Volume, ...]:
        """The caller's volume plan in `project`, as the caller's workspaces (and so workers) see it."""
        if self.config.backend == "kubernetes":
            storage = self.config.kubernetes_storage
            return kube_volume_plan(caller.name, project, admin=caller.admin, storage=storage)
        return local_volume_plan(caller.name, project, admin=caller.admin, root=self.config.local_root)


def routes(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    """The service's route table; `openapi.PATHS` documents every API route in it (tests/security)."""
    base = prefix.rstrip("/")
    api = base + "/api"
    job = r"/jobs/([0-9a-f]{16})"
    return [
        (base + "/?", RootHandler),
        (api + "/openapi.json", OpenAPIHandler),
        (api + "/jobs", JobsHandler),
        (api + "/options", OptionsHandler),
        (api + job, JobHandler),
        (api + job + "/logs", LogsHandler),
        (api + job + "/explain", ExplainHandler),
        (api + job + "/result", ResultHandler),
        (base + r"/.*", NotFoundHandler),
    ]


def make_app(ctx: Context, prefix: str) -> web.Application:
    return web.Application(
        routes(prefix),
        ctx=ctx,
        hub_auth=ctx.hub_auth,
        prefix=prefix,
        openapi=True,
        default_handler_class=NotFoundHandler,
    )

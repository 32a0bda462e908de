"""The `jobs` service's HTTP API: small tornado handlers over the store, logs and a backend.

Every request is authenticated by the hub (a notebook's JUPYTERHUB_API_TOKEN,
which carries `access:services!service=jobs`); users see and touch only their
own jobs, admins everyone's. Every error is JSON {"error", "hint"}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado import httpclient, iostream, web

from lavahub.config import PlatformConfig
from spawner.errors import PublicError
from spawner.projects import Project, project_from_group
from spawner.store import TemplateStore
from spawner.volumes import local_volume_plan

from ..api import ApiError, JsonApiHandler, NotFoundHandler, hub_get
from .backends.base import Backend
from .explain import explain
from .jobdir import write_job_files
from .logs import JobLogs
from .models import Job, JobState
from .openapi import openapi
from .spec import Caller, new_job_id, validate_submission
from .store import JobStore
from .supervisor import Supervisor

log = logging.getLogger(__name__)


class Context:
    """What the handlers share: config, store, logs, backend, the hub's auth and group cache."""

    def __init__(self, config: PlatformConfig, backend: Backend, hub_auth: HubAuth):
        self.config = config
        self.backend = backend
        self.hub_auth = hub_auth
        self.store = JobStore(config.database_url)
        self.templates = TemplateStore(config.database_url)
        self.logs = JobLogs(config.data_dir / "jobs")
        self.supervisor = Supervisor(self.store, backend, self.logs)
        self._groups: dict[str, tuple[float, dict[str, Any]]] = {}

    async def project(self, name: str) -> Project | None:
        """A project's settings from the hub's group (cached briefly; membership comes from the user)."""
        cached = self._groups.get(name)
        if cached is None or time.monotonic() - cached[0] > 10:
            try:
                group = await hub_get(self.hub_auth, f"/groups/{name}")
            except httpclient.HTTPClientError as e:
                log.warning("Cannot read group %s from the hub: %s", name, e)
                return None
            cached = (time.monotonic(), group)
            self._groups[name] = cached
        group = cached[1]
        try:
            return project_from_group(name, group.get("properties"), group.get("users", []))
        except PublicError:
            return None


class APIHandler(JsonApiHandler):
    service = "jobs"
    caller: Caller

    @property
    def ctx(self) -> Context:
        return self.settings["ctx"]

    async def prepare(self) -> None:
        await super().prepare()
        self.caller = Caller(name=self.user_model["name"], admin=bool(self.user_model.get("admin")))

    def visible_job(self, job_id: str) -> Job:
        """The job, if the caller may see it; otherwise 404 (others' jobs do not exist for them)."""
        job = self.ctx.store.get(job_id)
        if job is None or not (job.user == self.caller.name or self.caller.admin):
            raise ApiError(404, f"No job {job_id}.", hint="GET jobs lists your jobs")
        return job

    async def caller_projects(self) -> dict[str, Project]:
        projects = {}
        for name in sorted(self.user_model.get("groups", [])):
            project = await self.ctx.project(name)
            if project is not None:
                projects[name] = project
        return projects


class JobsHandler(APIHandler):
    async def get(self) -> None:
        everyone = self.get_argument("all", "") in ("1", "true")
        if everyone and not self.caller.admin:
            raise ApiError(403, "Only admins may list everyone's jobs.")
        try:
            limit = max(1, min(int(self.get_argument("limit", "100")), 1000))
        except ValueError:
            raise ApiError(400, "limit must be a whole number.") from None
        state = self.get_argument("state", None)
        if state is not None and state not in {s.value for s in JobState}:
            raise ApiError(
                400, f"Unknown state {state!r}.", hint="pending, running, succeeded, failed, cancelled"
            )
        jobs = self.ctx.store.list(
            user=None if everyone else self.caller.name,
            project=self.get_argument("project", None),
            state=state,
            limit=limit,
        )
        self.write_json({"jobs": [job.to_json() for job in jobs]})

    async def post(self) -> None:
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise ApiError(400, "The request body is not JSON.") from None
        ctx = self.ctx
        projects = await self.caller_projects()
        project_name = body.get("project") if isinstance(body, dict) else None
        project = (
            projects.get(project_name)
            if project_name
            else (projects[sorted(projects)[0]] if projects else None)
        )
        volumes = {}
        if project is not None:
            plan = local_volume_plan(
                self.caller.name, project.name, admin=self.caller.admin, root=ctx.config.local_root
            )
            volumes = {v.kind: Path(v.mount_path) for v in plan}
        in_use = (
            {
                f"{j.user}/{j.id}": j.total
                for j in ctx.store.list(project=project.name, unfinished=True, limit=10_000)
            }
            if project
            else {}
        )
        usage = await ctx.backend.usage()
        capacity = usage.total if usage else ctx.backend.expected_capacity
        spec = validate_submission(
            body,
            caller=self.caller,
            projects=projects,
            templates=ctx.templates.list(),
            limits=ctx.config.jobs,
            capacity=capacity,
            in_use=in_use,
            volumes=volumes,
            job_id=new_job_id(),
        )
        await asyncio.to_thread(write_job_files, spec)
        job = ctx.store.add(
            spec,
            extra={"template_version": spec.template_version, "queue": spec.queue, "result": spec.result},
        )
        log.info(
            "Job %s accepted for %s in %s: %d x %s",
            job.id,
            job.user,
            job.project,
            job.workers,
            job.resources.describe(),
        )
        self.write_json(job.to_json(), status=201)


class JobHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        self.write_json(self.visible_job(job_id).to_json())

    async def delete(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        job = await self.ctx.supervisor.cancel(job, by=self.caller.name)
        self.write_json(job.to_json())


class LogsHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        try:
            seen = max(int(self.get_argument("since", "0")), 0)
        except ValueError:
            raise ApiError(400, "since must be a whole number of lines.") from None
        follow = self.get_argument("follow", "") in ("1", "true")
        job_log = self.ctx.logs[job.id]
        if job.extra.get("log_complete"):
            job_log.complete = True
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        while True:
            lines = job_log.read(seen)
            if lines:
                self.write("".join(line + "\n" for line in lines))
                seen += len(lines)
                try:
                    await self.flush()
                except iostream.StreamClosedError:
                    return
            if not follow or (job_log.complete and len(job_log) <= seen):
                break
            await job_log.wait(seen, timeout=5)
            if self.request.connection.stream.closed():
                return
        self.finish()


class ExplainHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        ctx = self.ctx
        ahead = [j for j in ctx.store.unfinished() if j.created < job.created and j.id != job.id]
        failing: list[str] = []
        if job.state == JobState.FAILED:
            rank = job.extra.get("failed_worker")
            source = f"[worker-{rank}] " if rank is not None else "[launcher] "
            failing = ctx.logs[job.id].tail(source, 10)
        usage = await ctx.backend.usage() if job.state == JobState.PENDING else None
        self.write_json(
            explain(job, waiting_for=ctx.backend.waiting_for, usage=usage, ahead=ahead, failing_lines=failing)
        )


class ResultHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        path = Path(job.job_dir) / "result.pkl"
        if job.state != JobState.SUCCEEDED or not path.exists():
            raise ApiError(
                404,
                f"Job {job.id} has no result.",
                hint="a result exists once a job submitted with `result` has succeeded",
            )
        self.write_json({"result": base64.b64encode(path.read_bytes()).decode()})


class RootHandler(web.RequestHandler):
    """The service's own URL: what it is and where its API lives (the hub checks it answers)."""

    def get(self) -> None:
        api = self.settings["prefix"].rstrip("/") + "/api/"
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"service": "lavahub jobs", "api": api, "openapi": api + "openapi.json"}))


class OpenAPIHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi(self.settings["prefix"])))


def make_app(ctx: Context, prefix: str) -> web.Application:
    api = prefix.rstrip("/") + "/api"
    job = r"/jobs/([0-9a-f]{16})"
    return web.Application(
        [
            (prefix.rstrip("/") + "/?", RootHandler),
            (api + "/openapi.json", OpenAPIHandler),
            (api + "/jobs", JobsHandler),
            (api + job, JobHandler),
            (api + job + "/logs", LogsHandler),
            (api + job + "/explain", ExplainHandler),
            (api + job + "/result", ResultHandler),
            (prefix.rstrip("/") + r"/.*", NotFoundHandler),
        ],
        ctx=ctx,
        hub_auth=ctx.hub_auth,
        prefix=prefix,
        openapi=True,
        default_handler_class=NotFoundHandler,
    )

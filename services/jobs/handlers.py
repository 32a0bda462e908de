"""The jobs API's tornado handlers: small, each one operation over the service's `Context`.

Every request is authenticated by the hub (a notebook's JUPYTERHUB_API_TOKEN,
which carries `access:services!service=jobs`); users see and touch only their
own jobs, admins everyone's. Bodies are the models of `api_models`; every
error is JSON {"error", "hint", "field"}.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from tornado import iostream, web

from spawner.projects import Project

from ..api import ApiError, JsonApiHandler
from .api_models import Explanation, JobList, Options, ProjectChoice, Result, ServiceInfo, TemplateChoice
from .api_models import Job as JobBody
from .backends.base import ResultUnavailable
from .explain import explain
from .models import Job, JobState
from .openapi import openapi
from .spec import Caller, new_job_id, validate_submission

if TYPE_CHECKING:
    from .app import Context

log = logging.getLogger(__name__)


class APIHandler(JsonApiHandler):
    service = "jobs"
    caller: Caller

    @property
    def ctx(self) -> Context:
        return self.settings["ctx"]

    async def prepare(self) -> None:
        await super().prepare()
        self.caller = Caller(name=self.user_model["name"], admin=bool(self.user_model.get("admin")))

    def write_model(self, body: BaseModel, status: int = 200) -> None:
        self.write_json(body.model_dump(mode="json"), status=status)

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
        self.write_model(JobList(jobs=[JobBody.of(job) for job in jobs]))

    async def post(self) -> None:
        body = self.body_json()
        ctx = self.ctx
        projects = await self.caller_projects()
        capacity = await ctx.backend.capacity()
        # no await from here to the store's add: the count below is the one the new job joins
        project = _chosen_project(body, projects)
        spec = validate_submission(
            body,
            caller=self.caller,
            projects=projects,
            templates=ctx.templates.list(),
            limits=ctx.config.jobs,
            capabilities=ctx.backend.capabilities,
            capacity=capacity,
            unfinished=ctx.store.unfinished_count(self.caller.name),
            volumes=ctx.volumes(self.caller, project.name) if project else (),
            job_id=new_job_id(),
        )
        ctx.payloads.save(spec.id, spec.code, spec.exports)
        job = ctx.store.add(spec)
        log.info(
            "Job %s %r accepted for %r in %r: %d x %s",
            job.id,
            job.name,
            job.user,
            job.project,
            job.workers,
            job.resources.describe(),
        )
        self.write_model(JobBody.of(job), status=201)


def _chosen_project(body: Any, projects: dict[str, Project]) -> Project | None:
    """The project the body names (validated later), else the caller's first one."""
    name = body.get("project") if isinstance(body, dict) else None
    if name:
        return projects.get(name) if isinstance(name, str) else None
    return projects[sorted(projects)[0]] if projects else None


class JobHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        self.write_model(JobBody.of(self.visible_job(job_id)))

    async def delete(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        job = await self.ctx.supervisor.cancel(job, by=self.caller.name)
        self.write_model(JobBody.of(job))


class LogsHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        try:
            seen = max(int(self.get_argument("since", "0")), 0)
        except ValueError:
            raise ApiError(400, "since must be a whole number of lines.") from None
        follow = self.get_argument("follow", "") in ("1", "true")
        job_log = self.ctx.logs[job.id]
        if job.log_complete:
            job_log.complete = True
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        while True:
            lines = job_log.read(seen)  # a chunk of the file at a time, never the whole log in memory
            if lines:
                self.write("".join(line + "\n" for line in lines))
                seen += len(lines)
                try:
                    await self.flush()
                except iostream.StreamClosedError:
                    return
            if len(job_log) > seen:
                continue
            if not follow or job_log.complete:
                break
            await job_log.wait(seen, timeout=5)
            if self.request.connection.stream.closed():  # type: ignore[union-attr]
                return
        self.finish()


class ExplainHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        ctx = self.ctx
        ahead = [j for j in ctx.store.unfinished() if j.created < job.created and j.id != job.id]
        failing: list[str] = []
        if job.state == JobState.FAILED:
            rank = job.failed_worker
            source = f"[worker-{rank}] " if rank is not None else "[launcher] "
            failing = ctx.logs[job.id].tail(source, 10)
        diagnosis = await ctx.backend.diagnose(job) if job.state == JobState.PENDING else None
        quota = await ctx.quota(job.project) if job.state == JobState.PENDING else None
        waits = ctx.supervisor.quota_wait(job, quota)  # after the awaits: the queue as it is now
        told = explain(job, diagnosis=diagnosis, ahead=ahead, failing_lines=failing, quota=waits)
        self.write_model(Explanation(**told))


class ResultHandler(APIHandler):
    async def get(self, job_id: str) -> None:
        job = self.visible_job(job_id)
        try:
            data = await self.ctx.backend.result(job) if job.state == JobState.SUCCEEDED else None
        except ResultUnavailable as e:
            raise ApiError(
                404,
                f"Job {job.id}'s result is not returned: {e}.",
                hint="save a large result to your project volume from the job, and load it from there",
            ) from None
        if data is None:
            raise ApiError(
                404,
                f"Job {job.id} has no result.",
                hint="a result exists once a job submitted with `result` has succeeded",
            )
        self.write_model(Result(result=base64.b64encode(data).decode()))


class OptionsHandler(APIHandler):
    async def get(self) -> None:
        """The choices a submission form offers this caller, from the same sources `POST jobs` checks."""
        ctx = self.ctx
        projects = await self.caller_projects()
        caps = ctx.backend.capabilities
        limits = ctx.config.jobs
        templates = [
            t for t in ctx.templates.list() if t.enabled and any(t.allows_project(name) for name in projects)
        ]
        self.write_model(
            Options(
                frameworks=list(caps.frameworks),
                driver_frameworks=sorted(caps.driver_frameworks),
                max_workers=limits.max_workers,
                elastic=caps.elastic,
                gpus=caps.gpus,
                default_timeout=limits.default_timeout,
                max_timeout=limits.max_timeout,
                projects=[ProjectChoice(name=p.name, quota=p.quota.to_dict()) for p in projects.values()],
                templates=[
                    TemplateChoice.model_validate(
                        {k: v for k, v in t.to_dict().items() if k in TemplateChoice.model_fields}
                    )
                    for t in templates
                ],
            )
        )


class RootHandler(web.RequestHandler):
    """The service's own URL: what it is and where its API lives (the hub checks it answers)."""

    def get(self) -> None:
        api = self.settings["prefix"].rstrip("/") + "/api/"
        info = ServiceInfo(service="lavahub jobs", api=api, openapi=api + "openapi.json")
        self.set_header("Content-Type", "application/json")
        self.finish(info.model_dump_json())


class OpenAPIHandler(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(openapi(self.settings["prefix"])))

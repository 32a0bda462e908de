"""The `templates` service's API: the image-template catalogue over the template store, as JSON.

Who may see and change what is `policy`'s. Validation is the config's own
(`Context.validated`); its `PublicError` answers 400 with the field it names.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from tornado import web

from spawner.errors import PublicError
from spawner.templates import Template

from ..api import ApiError, JsonApiHandler
from . import policy
from .context import Context


def shown(template: Template) -> dict[str, Any]:
    return {**template.to_dict(), "version": template.version}


class Handler(JsonApiHandler):
    service = "templates"

    @property
    def ctx(self) -> Context:
        return self.settings["ctx"]

    @property
    def is_admin(self) -> bool:
        return policy.may_write(self.user_model)

    def require_admin(self) -> None:
        if not self.is_admin:
            raise ApiError(403, policy.WRITE_REFUSED, hint=policy.WRITE_REFUSED_HINT)

    def existing(self, slug: str) -> Template:
        template = policy.find(self.ctx.store, slug, self.user_model)
        if template is None:
            raise ApiError(404, f"No template {slug!r}.", hint="GET templates lists the ones you can use")
        return template

    @property
    def author(self) -> str:
        return str(self.user_model["name"])


class TemplatesHandler(Handler):
    async def get(self) -> None:
        templates = policy.visible(self.ctx.store.list(), self.user_model)
        body: dict[str, Any] = {"templates": [shown(t) for t in templates]}
        if self.is_admin:
            usage = await self.ctx.usage()
            body["usage"] = {t.slug: usage.get(t.slug, 0) for t in templates}
        self.write_json(body)

    async def post(self) -> None:
        self.require_admin()
        template = await self.ctx.validated(self.body_json())
        if self.ctx.store.get(template.slug) is not None:
            raise ApiError(
                409, f"Template {template.slug!r} exists.", hint="PUT or PATCH templates/<slug> changes it",
                field="slug",
            )  # fmt: skip
        self.write_json(shown(self.ctx.store.put(template, self.author)), 201)


class TemplateHandler(Handler):
    async def get(self, slug: str) -> None:
        self.write_json(shown(self.existing(slug)))

    async def put(self, slug: str) -> None:
        self.require_admin()
        self.existing(slug)
        body = self.body_json()
        if isinstance(body, dict) and body.setdefault("slug", slug) != slug:
            raise ApiError(400, "A template's slug cannot change.", hint=f"use {slug!r}", field="slug")
        self.write_json(shown(self.ctx.store.put(await self.ctx.validated(body), self.author)))

    async def patch(self, slug: str) -> None:
        self.require_admin()
        current = self.existing(slug)
        body = self.body_json()
        if not isinstance(body, dict):
            raise ApiError(400, "A PATCH body is an object of the fields to change.")
        if body.get("slug", slug) != slug:
            raise ApiError(400, "A template's slug cannot change.", hint=f"use {slug!r}", field="slug")
        template = await self.ctx.validated({**current.to_dict(), **body})
        self.write_json(shown(self.ctx.store.put(template, self.author)))

    async def delete(self, slug: str) -> None:
        """Delete; a template running workspaces use is disabled instead, and the answer says so."""
        self.require_admin()
        current = self.existing(slug)
        in_use = (await self.ctx.usage()).get(slug, 0)
        if in_use:
            disabled = self.ctx.store.put(replace(current, enabled=False), self.author)
            self.write_json({
                **shown(disabled),
                "deleted": False,
                "message": f"Template {slug!r} is used by {in_use} running workspace(s): it is disabled "
                "instead, so no new workspace starts from it. Delete it once they have stopped.",
            })  # fmt: skip
            return
        self.ctx.store.delete(slug)
        self.set_status(204)
        self.finish()


class HistoryHandler(Handler):
    async def get(self, slug: str) -> None:
        self.require_admin()
        self.existing(slug)
        self.write_json({"slug": slug, "versions": self.ctx.store.history(slug)})


class RollbackHandler(Handler):
    async def post(self, slug: str) -> None:
        self.require_admin()
        self.existing(slug)
        body = self.body_json()
        version = body.get("version") if isinstance(body, dict) else None
        if isinstance(version, bool) or not isinstance(version, int):
            raise ApiError(400, 'Say which version to restore: {"version": N}.', field="version")
        try:
            restored = self.ctx.store.rollback(slug, version, self.author)
        except PublicError as e:
            raise ApiError(
                404 if e.field == "version" else 400, e.message, hint=e.hint, field=e.field
            ) from None
        self.write_json(shown(restored))


class ApiRootHandler(web.RequestHandler):
    """What this API is; the service's own URL is the admin page."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        api = self.settings["prefix"].rstrip("/") + "/api/"
        self.finish(json.dumps({"service": "lavahub templates", "api": api, "page": self.settings["prefix"]}))

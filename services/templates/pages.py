"""The templates service's pages: the catalogue in the browser, signed in through the hub.

Rendered from the Jinja files in `html/` (autoescaped, extending `base.html`, which
links the hub's own stylesheet), every form XSRF-protected. Writers (`policy`) create,
edit, enable, disable and roll back; everyone else sees the templates of their
projects. Validation is the API's (`Context.validated`); an invalid value comes back
next to its field, with what was typed kept.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from jupyterhub.services.auth import HubOAuthenticated
from markupsafe import Markup
from tornado import web

from spawner.errors import PublicError
from spawner.templates import Template

from . import policy
from .context import Context

# form field -> how a template holds it
NUMBERS = ("cpus", "gpus", "max_cpus", "max_gpus")
LISTS = ("gpu_types", "projects")
FIELDS = ("slug", "display_name", "description", "image", "cpus", "memory", "gpus", "max_cpus",
          "max_memory", "max_gpus", "gpu_types", "projects")  # fmt: skip

HTML = Environment(
    loader=PackageLoader(__package__, "html"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
HTML.filters["repr"] = repr


class Page(HubOAuthenticated, web.RequestHandler):
    @property
    def hub_auth(self) -> Any:
        return self.settings["hub_auth"]

    @property
    def ctx(self) -> Context:
        return self.settings["ctx"]

    @property
    def is_admin(self) -> bool:
        return policy.may_write(self.current_user or {})

    @property
    def author(self) -> str:
        return str(self.current_user["name"])

    def require_admin(self) -> None:
        if not self.is_admin:
            raise web.HTTPError(403, policy.WRITE_REFUSED)

    def existing(self, slug: str) -> Template:
        template = policy.find(self.ctx.store, slug, self.current_user or {})
        if template is None:
            raise web.HTTPError(404, f"No template {slug!r}.")
        return template

    def render_page(self, name: str, title: str, **values: Any) -> None:
        """`html/<name>` with what every page may use: its title, the prefix, and `xsrf()`, a
        form's hidden XSRF field (tornado's own markup; made, and its cookie set, only where used)."""
        page = HTML.get_template(name)
        xsrf = lambda: Markup(self.xsrf_form_html())  # noqa: E731
        self.finish(page.render(title=title, prefix=self.settings["prefix"], xsrf=xsrf, **values))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = (
            error.log_message if isinstance(error, web.HTTPError) and error.log_message else self._reason
        )
        self.render_page("error.html", str(status_code), message=str(message))


class ListPage(Page):
    @web.authenticated
    async def get(self) -> None:
        templates = policy.visible(self.ctx.store.list(), self.current_user)
        usage = await self.ctx.usage() if self.is_admin else {}
        self.render_page(
            "list.html", "Image templates", templates=templates, usage=usage, admin=self.is_admin
        )


class EditPage(Page):
    """Create (`new`) or edit one template; errors come back inline, next to their field."""

    @web.authenticated
    async def get(self, slug: str | None = None) -> None:
        self.require_admin()
        current = self.existing(slug) if slug else None
        values = _form_values(current.to_dict()) if current else {"max_cpus": "1", "cpus": "1"}
        self.form(slug, values, None)

    @web.authenticated
    async def post(self, slug: str | None = None) -> None:
        self.require_admin()
        current = self.existing(slug) if slug else None
        values = {key: self.get_body_argument(key, "").strip() for key in FIELDS}
        if slug is not None:
            values["slug"] = slug
        data = {**(current.to_dict() if current else {}), **_parsed(values)}
        data["enabled"] = self.get_body_argument("enabled", "") == "on"
        try:
            template = await self.ctx.validated(data)
            if slug is None and self.ctx.store.get(template.slug) is not None:
                raise PublicError(f"template.slug: {template.slug!r} exists already", field="slug")
        except PublicError as e:
            self.set_status(400)
            self.form(slug, {**values, "enabled": data["enabled"]}, e)
            return
        self.ctx.store.put(template, self.author)
        self.redirect(self.settings["prefix"])

    def form(self, slug: str | None, values: dict[str, Any], error: PublicError | None) -> None:
        self.render_page(
            "edit.html",
            f"Edit {slug}" if slug else "New template",
            action=self.settings["prefix"] + (f"edit/{slug}" if slug else "new"),
            fields=[key for key in FIELDS if not (key == "slug" and slug)],  # a slug cannot change
            values=values,
            error=error,
            error_field=_form_field(error.field) if error else None,
        )


class TogglePage(Page):
    @web.authenticated
    async def post(self, slug: str) -> None:
        self.require_admin()
        template = self.existing(slug)
        self.ctx.store.put(replace(template, enabled=not template.enabled), self.author)
        self.redirect(self.settings["prefix"])


class HistoryPage(Page):
    @web.authenticated
    async def get(self, slug: str) -> None:
        self.require_admin()
        self.existing(slug)
        versions = list(reversed(self.ctx.store.history(slug)))
        self.render_page("history.html", f"History of {slug}", slug=slug, versions=versions)


class RollbackPage(Page):
    @web.authenticated
    async def post(self, slug: str) -> None:
        self.require_admin()
        try:
            version = int(self.get_body_argument("version"))
            self.ctx.store.rollback(slug, version, self.author)
        except (ValueError, PublicError) as e:
            raise web.HTTPError(400, str(e)) from None
        self.redirect(f"{self.settings['prefix']}history/{slug}")


def _form_values(spec: dict[str, Any]) -> dict[str, Any]:
    values = {key: spec.get(key, "") for key in FIELDS}
    for key in LISTS:
        values[key] = ", ".join(spec.get(key) or [])
    values["enabled"] = spec.get("enabled", True)
    return values


def _parsed(values: dict[str, str]) -> dict[str, Any]:
    """Form strings as the config would hold them; what does not parse is left for validation to name."""
    data: dict[str, Any] = {}
    for key, value in values.items():
        if value == "" and key not in ("slug", "image", "description"):
            continue
        if key in NUMBERS:
            try:
                data[key] = int(value) if value.isdigit() else float(value)
            except ValueError:
                data[key] = value
        elif key in LISTS:
            data[key] = [item.strip() for item in value.split(",") if item.strip()]
        else:
            data[key] = value
    return data


def _form_field(field: str | None) -> str | None:
    """The form field an error's field is in: `projects[0]` is in `projects`."""
    return field.split("[", 1)[0].split(".", 1)[0] if field else None

"""The templates service's admin page: the catalogue in the browser, signed in through the hub.

Server-rendered, styled with the hub's own stylesheet, every form XSRF-protected.
Admins (and holders of custom:templates:admin) create, edit, enable, disable and roll
back; everyone else sees the templates of their projects. Validation is the API's.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape
from typing import Any

from jupyterhub.services.auth import HubOAuthenticated
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

    def require_admin(self) -> None:
        if not self.is_admin:
            raise web.HTTPError(403, policy.WRITE_REFUSED)

    def page(self, title: str, body: str) -> None:
        base = self.settings["prefix"]
        self.finish(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{escape(title)} - lavahub</title>
<link rel="stylesheet" href="/hub/static/css/style.min.css">
<style>.lavahub-error{{color:#a94442}} td,th{{padding:4px 10px}}
.lavahub-diff{{font-family:monospace}}</style>
</head><body><div class="container" style="margin-top:20px">
<p><a href="/hub/home">Home</a> &middot; <a href="{base}">Templates</a></p>
<h1>{escape(title)}</h1>{body}</div></body></html>""")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        message = (
            error.log_message if isinstance(error, web.HTTPError) and error.log_message else self._reason
        )
        self.page(f"{status_code}", f"<p>{escape(str(message))}</p>")


class ListPage(Page):
    @web.authenticated
    async def get(self) -> None:
        templates = policy.visible(self.ctx.store.list(), self.current_user)
        usage = await self.ctx.usage() if self.is_admin else {}
        base = self.settings["prefix"]
        rows = []
        for t in templates:
            actions = ""
            if self.is_admin:
                toggle = "Disable" if t.enabled else "Enable"
                actions = (
                    f'<a class="btn btn-xs btn-default" href="{base}edit/{t.slug}">Edit</a> '
                    f'<a class="btn btn-xs btn-default" href="{base}history/{t.slug}">History</a> '
                    f'<form method="post" action="{base}toggle/{t.slug}" style="display:inline">'
                    f'{self.xsrf_form_html()}<button class="btn btn-xs btn-default">{toggle}</button></form>'
                )
            rows.append(
                f'<tr id="template-{t.slug}"><td>{escape(t.slug)}</td><td>{escape(t.display_name)}</td>'
                f"<td><code>{escape(t.image)}</code></td><td>{escape(', '.join(t.projects) or 'all')}</td>"
                f"<td>{t.version}</td><td>{'yes' if t.enabled else 'no'}</td>"
                + (
                    f'<td class="usage">{usage.get(t.slug, 0)}</td><td>{actions}</td>'
                    if self.is_admin
                    else ""
                )
                + "</tr>"
            )
        head = "<th>Slug</th><th>Name</th><th>Image</th><th>Projects</th><th>Version</th><th>Enabled</th>"
        if self.is_admin:
            head += "<th>Running</th><th></th>"
        new = f'<p><a class="btn btn-primary" href="{base}new">New template</a></p>' if self.is_admin else ""
        self.page("Image templates", f'{new}<table class="table"><tr>{head}</tr>{"".join(rows)}</table>')


class EditPage(Page):
    """Create (`new`) or edit one template; errors come back inline, next to their field."""

    @web.authenticated
    async def get(self, slug: str | None = None) -> None:
        self.require_admin()
        current = self._current(slug)
        values = _form_values(current.to_dict()) if current else {"max_cpus": "1", "cpus": "1"}
        self.form(slug, values, None)

    @web.authenticated
    async def post(self, slug: str | None = None) -> None:
        self.require_admin()
        current = self._current(slug)
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
        self.ctx.store.put(template, str(self.current_user["name"]))
        self.redirect(self.settings["prefix"])

    def _current(self, slug: str | None) -> Template | None:
        if slug is None:
            return None
        template = self.ctx.store.get(slug)
        if template is None:
            raise web.HTTPError(404, f"No template {slug!r}.")
        return template

    def form(self, slug: str | None, values: dict[str, Any], error: PublicError | None) -> None:
        field = _form_field(error.field) if error else None
        inputs = []
        for key in FIELDS:
            if key == "slug" and slug is not None:
                continue
            message = (
                f'<span class="help-block lavahub-error" id="error-{key}">{escape(error.message)}</span>'
                if error and key == field
                else ""
            )
            inputs.append(
                f'<div class="form-group{" has-error" if message else ""}"><label for="f-{key}">{key}</label>'
                f'<input class="form-control" id="f-{key}" name="{key}" '
                f'value="{escape(str(values.get(key, "")))}">'
                f"{message}</div>"
            )
        if error and field not in FIELDS:
            inputs.insert(0, f'<p class="lavahub-error">{escape(error.message)}</p>')
        checked = " checked" if values.get("enabled", True) else ""
        action = self.settings["prefix"] + (f"edit/{slug}" if slug else "new")
        self.page(
            f"Edit {slug}" if slug else "New template",
            f'<form method="post" action="{action}">{self.xsrf_form_html()}{"".join(inputs)}'
            f'<div class="checkbox"><label>'
            f'<input type="checkbox" name="enabled"{checked}> enabled</label></div>'
            f'<button class="btn btn-primary" type="submit">Save</button></form>',
        )


class TogglePage(Page):
    @web.authenticated
    async def post(self, slug: str) -> None:
        self.require_admin()
        template = self.ctx.store.get(slug)
        if template is None:
            raise web.HTTPError(404, f"No template {slug!r}.")
        self.ctx.store.put(replace(template, enabled=not template.enabled), str(self.current_user["name"]))
        self.redirect(self.settings["prefix"])


class HistoryPage(Page):
    @web.authenticated
    async def get(self, slug: str) -> None:
        self.require_admin()
        if self.ctx.store.get(slug) is None:
            raise web.HTTPError(404, f"No template {slug!r}.")
        items = []
        for v in reversed(self.ctx.store.history(slug)):
            changes = "<br>".join(
                f"{escape(k)}: {escape(repr(c['from']))} &rarr; {escape(repr(c['to']))}"
                for k, c in v["changes"].items()
            )
            action = f"{self.settings['prefix']}rollback/{slug}"
            rollback = (
                f'<form method="post" action="{action}" style="display:inline">'
                f'{self.xsrf_form_html()}<input type="hidden" name="version" value="{v["version"]}">'
                f'<button class="btn btn-xs btn-default">Restore version {v["version"]}</button></form>'
            )
            items.append(
                f"<tr><td>{v['version']}</td><td>{escape(v['author'])}</td><td>{escape(v['created'])}</td>"
                f'<td class="lavahub-diff">{changes}</td><td>{rollback}</td></tr>'
            )
        self.page(
            f"History of {slug}",
            '<table class="table"><tr><th>Version</th><th>By</th><th>When</th><th>Changes</th><th></th></tr>'
            + "".join(items)
            + "</table>",
        )


class RollbackPage(Page):
    @web.authenticated
    async def post(self, slug: str) -> None:
        self.require_admin()
        try:
            version = int(self.get_body_argument("version"))
            self.ctx.store.rollback(slug, version, str(self.current_user["name"]))
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

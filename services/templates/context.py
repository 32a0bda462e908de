"""What the templates service's handlers share: the template store, what they ask the hub,
and a template's validation (the config's own, `template_from_dict`)."""

from __future__ import annotations

from typing import Any

from jupyterhub.services.auth import HubAuth

from spawner.errors import PublicError
from spawner.store import TemplateStore
from spawner.templates import Template, template_from_dict

from ..api import hub_get

# where a template's errors point: "template.max_gpus: must be a whole number ..."
PATH = "template"


class Context:
    def __init__(self, store: TemplateStore, hub_auth: HubAuth):  # a HubOAuth, for the pages
        self.store = store
        self.hub_auth = hub_auth

    async def projects(self) -> set[str]:
        """The hub's groups: the projects a template may be restricted to."""
        return {group["name"] for group in await hub_get(self.hub_auth, "/groups")}

    async def usage(self) -> dict[str, int]:
        """Running (or starting) workspaces per template, from the hub's server models."""
        counts: dict[str, int] = {}
        for user in await hub_get(self.hub_auth, "/users?state=active"):
            for server in (user.get("servers") or {}).values():
                slug = (server.get("user_options") or {}).get("template")
                if slug and (server.get("ready") or server.get("pending")):
                    counts[slug] = counts.get(slug, 0) + 1
        return counts

    async def validated(self, data: Any) -> Template:
        """`data` checked as the config checks a template, its projects against the hub's groups.

        A `PublicError` keeps the config's message (`template.max_gpus: ...`); its `field` is
        then the template's own (`max_gpus`, `projects[0]`), None for the body as a whole.
        """
        try:
            return template_from_dict(data, PATH, known_projects=await self.projects())
        except PublicError as e:
            field = e.field.removeprefix(f"{PATH}.") if e.field and e.field.startswith(f"{PATH}.") else None
            raise PublicError(e.message, hint=e.hint, field=field) from None

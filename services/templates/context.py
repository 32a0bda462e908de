"""What the templates service's handlers share: the template store and what they ask the hub."""

from __future__ import annotations

from jupyterhub.services.auth import HubAuth

from spawner.store import TemplateStore

from ..api import hub_get


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

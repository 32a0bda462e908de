"""Who may do what with the template catalogue: one rule for the API and the pages.

`user` is the hub's user model, as HubAuth gives it (`admin`, `groups`, `scopes`).
Hub admins, and holders of the custom scope `custom:templates:admin` (grantable to
a group), change templates and read their history; everyone sees the enabled
templates of their projects.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spawner.store import TemplateStore
from spawner.templates import Template

ADMIN_SCOPE = "custom:templates:admin"
# what a refused write says, in the API and on the pages
WRITE_REFUSED = "Only admins change templates."
WRITE_REFUSED_HINT = f"ask an admin, or for the scope {ADMIN_SCOPE}"


def may_write(user: dict[str, Any]) -> bool:
    """Hub admins, and holders of custom:templates:admin, change templates."""
    return bool(user.get("admin")) or ADMIN_SCOPE in user.get("scopes", [])


def may_see(template: Template, user: dict[str, Any]) -> bool:
    """Admins see every template; others the enabled ones of their projects."""
    if may_write(user):
        return True
    groups = set(user.get("groups", []))
    return template.enabled and (not template.projects or bool(groups & set(template.projects)))


def visible(templates: Iterable[Template], user: dict[str, Any]) -> list[Template]:
    return [t for t in templates if may_see(t, user)]


def find(store: TemplateStore, slug: str, user: dict[str, Any]) -> Template | None:
    """The template `slug`, if it exists and `user` may see it."""
    template = store.get(slug)
    return template if template is not None and may_see(template, user) else None

"""`templates_service`: the template catalogue's hub service."""

from __future__ import annotations

from pydantic import Field

from .fields import Port, Section, Slug, UserName


class TemplatesServiceConfig(Section):
    """The `templates` service: its port, and who besides hub admins may change templates."""

    port: Port = Field(8083, description="The service's port on loopback; the proxy serves it.")
    admins: tuple[UserName, ...] = Field(
        (), description="Users granted custom:templates:admin (they change templates like hub admins)."
    )
    admin_groups: tuple[Slug, ...] = Field(
        (), description="Groups (projects) whose members are granted custom:templates:admin."
    )

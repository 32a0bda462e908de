"""The hub services' own settings: `templates_service` (the template catalogue) and `culler`
(jupyterhub-idle-culler)."""

from __future__ import annotations

from pydantic import Field

from .fields import Flag, Port, Positive, Section, Slug, UserName, Whole


class TemplatesServiceConfig(Section):
    """The `templates` service: its port, and who besides hub admins may change templates."""

    port: Port = Field(8083, description="The service's port on loopback; the proxy serves it.")
    admins: tuple[UserName, ...] = Field(
        (), description="Users granted custom:templates:admin (they change templates like hub admins)."
    )
    admin_groups: tuple[Slug, ...] = Field(
        (), description="Groups (projects) whose members are granted custom:templates:admin."
    )


class CullerConfig(Section):
    """jupyterhub-idle-culler as a hub service: it stops workspaces nobody has used for `timeout`."""

    enabled: Flag = Field(
        False,
        description="Run the culler. Off by default on one machine; the Helm chart turns it on.",
    )
    timeout: Positive = Field(3600, description="Seconds without activity after which a workspace stops.")
    every: Positive = Field(600, description="Seconds between the culler's rounds.")
    max_age: Whole = Field(
        0, description="Seconds after which a workspace stops even when in use; 0: no limit."
    )

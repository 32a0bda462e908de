"""A validated workspace request and the environment every backend gives it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .projects import Project
from .resources import Resources, format_memory
from .templates import Template
from .volumes import GLOBAL, PERSONAL, PROJECT, Volume, by_kind


@dataclass(frozen=True)
class WorkspaceRequest:
    """Who starts which template in which project, with what resources."""

    user: str
    admin: bool
    project: Project
    template: Template
    resources: Resources
    gpu_type: str | None = None

    def to_options(self) -> dict[str, Any]:
        """The normalized `user_options`, as the hub stores them for the next start."""
        options: dict[str, Any] = {
            "template": self.template.slug,
            "project": self.project.name,
            "gpus": self.resources.gpus,
            "cpus": self.resources.cpus,
            "memory": format_memory(self.resources.memory),
        }
        if self.gpu_type:
            options["gpu_type"] = self.gpu_type
        return options


def workspace_env(request: WorkspaceRequest, volumes: Iterable[Volume]) -> dict[str, str]:
    """Template environment first, then lavahub's own names (which templates cannot override)."""
    mounts = by_kind(tuple(volumes))
    env = dict(request.template.env)
    env.update(
        LAVAHUB_PROJECT=request.project.name,
        LAVAHUB_TEMPLATE=request.template.slug,
        LAVAHUB_TEMPLATE_VERSION=str(request.template.version),
        LAVAHUB_PERSONAL_DIR=mounts[PERSONAL].mount_path,
        LAVAHUB_PROJECT_DIR=mounts[PROJECT].mount_path,
        LAVAHUB_GLOBAL_DIR=mounts[GLOBAL].mount_path,
    )
    return env

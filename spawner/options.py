"""User options -> a validated WorkspaceRequest. The one place workspace choices are checked.

Both spawners and `lavahub render-workspace` call `resolve_options`, so the
REST API, the spawn form and the CLI refuse the same things with the same words.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import PublicError
from .projects import Project
from .resources import Resources, format_cpus, format_memory, parse_memory
from .templates import Template
from .workspace import WorkspaceRequest

OPTION_KEYS = ("template", "project", "gpus", "cpus", "memory", "gpu_type")


def resolve_options(
    options: Any,
    *,
    user: str,
    admin: bool,
    projects: Mapping[str, Project],
    templates: Sequence[Template],
) -> WorkspaceRequest:
    """Check `options` against the user's projects and the template catalogue.

    `projects` are the projects the user is a member of; `templates` is the whole
    catalogue (disabled ones included, so the refusal can say "disabled").
    Missing choices take the user's first project and the template's defaults.
    """
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise PublicError("Workspace options must be a JSON object.", hint=_keys_hint())
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise PublicError(f"Unknown workspace option {unknown[0]!r}.", hint=_keys_hint(), field=unknown[0])

    project = _project(options.get("project"), user, projects)
    template = _template(options.get("template"), project, templates)
    resources = Resources(
        cpus=_cpus(options.get("cpus"), template),
        memory=_memory(options.get("memory"), template),
        gpus=_gpus(options.get("gpus"), template),
    )
    gpu_type = _gpu_type(options.get("gpu_type"), template, resources.gpus)
    return WorkspaceRequest(user, admin, project, template, resources, gpu_type)


def _keys_hint() -> str:
    return f"known options: {', '.join(OPTION_KEYS)}"


def _project(name: Any, user: str, projects: Mapping[str, Project]) -> Project:
    if not projects:
        raise PublicError(
            f"{user} is not a member of any project, and every workspace belongs to one.",
            hint="ask an admin to add you to a project",
            field="project",
        )
    if name in (None, ""):
        return projects[sorted(projects)[0]]
    if not isinstance(name, str) or name not in projects:
        raise PublicError(
            f"{user} is not a member of project {name!r}.",
            hint=f"your projects: {', '.join(sorted(projects))}",
            field="project",
        )
    return projects[name]


def _template(slug: Any, project: Project, templates: Sequence[Template]) -> Template:
    usable = [t for t in templates if t.enabled and t.allows_project(project.name)]
    usable_hint = (
        f"templates for project {project.name}: {', '.join(t.slug for t in usable)}"
        if usable else "ask an admin to allow a template for this project"
    )  # fmt: skip
    if slug in (None, ""):
        if not usable:
            raise PublicError(
                f"No template is available in project {project.name!r}.", hint=usable_hint, field="template"
            )
        return usable[0]
    catalogue = {t.slug: t for t in templates}
    template = catalogue.get(slug) if isinstance(slug, str) else None
    if template is None:
        raise PublicError(f"Unknown template {slug!r}.", hint=usable_hint, field="template")
    if not template.enabled:
        raise PublicError(f"Template {slug!r} is disabled.", hint=usable_hint, field="template")
    if not template.allows_project(project.name):
        raise PublicError(
            f"Template {slug!r} is not available in project {project.name!r}.",
            hint=usable_hint,
            field="template",
        )
    return template


def _number(value: Any, field: str) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)  # form fields arrive as text
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PublicError(f"{field} must be a number, got {value!r}.", field=field)
    return value


def _gpus(value: Any, template: Template) -> int:
    if value in (None, ""):
        return template.gpus
    gpus = _number(value, "gpus")
    if gpus < 0 or not float(gpus).is_integer():
        raise PublicError(f"gpus must be a whole number >= 0, got {value!r}.", field="gpus")
    _at_most(template, "gpus", int(gpus), template.max_gpus, str, "GPUs")
    return int(gpus)


def _cpus(value: Any, template: Template) -> float:
    if value in (None, ""):
        return template.cpus
    cpus = _number(value, "cpus")
    if cpus <= 0:
        raise PublicError(f"cpus must be more than 0, got {value!r}.", field="cpus")
    _at_most(template, "cpus", cpus, template.max_cpus, format_cpus, "CPUs")
    return float(cpus)


def _memory(value: Any, template: Template) -> int:
    if value in (None, ""):
        return template.memory
    try:
        memory = parse_memory(value)
    except ValueError as e:
        raise PublicError(f"memory: {e}.", hint="use e.g. 512Mi or 8Gi", field="memory") from None
    if memory <= 0:
        raise PublicError(f"memory must be more than 0, got {value!r}.", field="memory")
    _at_most(template, "memory", memory, template.max_memory, format_memory, "memory")
    return memory


def _at_most(
    template: Template, field: str, asked: float, maximum: float, fmt: Callable[[Any], str], unit: str
) -> None:
    if asked > maximum:
        raise PublicError(
            f"Template {template.slug!r} allows at most {fmt(maximum)} {unit}; {fmt(asked)} asked for.",
            hint=f"ask for at most {fmt(maximum)} {unit}, or pick another template",
            field=field,
        )


def _gpu_type(value: Any, template: Template, gpus: int) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or value not in template.gpu_types:
        allowed = ", ".join(template.gpu_types) or "none"
        raise PublicError(
            f"GPU model {value!r} is not offered by template {template.slug!r}.",
            hint=f"models of this template: {allowed}",
            field="gpu_type",
        )
    if gpus == 0:
        raise PublicError(
            "A GPU model was chosen but no GPUs were asked for.", hint="set gpus", field="gpu_type"
        )
    return value

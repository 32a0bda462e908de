"""Template catalogue import and export: YAML in the config's `templates` shape.

An import is checked whole before anything is written (every error with its
path), and it is idempotent: a template whose fields did not change gets no
new version. The CLI and (later) the templates service both go through here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PublicError
from .templates import Template, template_from_dict


@dataclass
class ImportPlan:
    """What an import would do; `errors` non-empty means it must not be applied."""

    added: list[Template] = field(default_factory=list)
    changed: list[Template] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def writes(self) -> list[Template]:
        return [*self.added, *self.changed]

    def summary(self, *, dry_run: bool) -> str:
        verb = "would add" if dry_run else "added"
        change = "would change" if dry_run else "changed"
        parts = [
            f"{verb} {len(self.added)}"
            + (f" ({', '.join(t.slug for t in self.added)})" if self.added else ""),
            f"{change} {len(self.changed)}"
            + (f" ({', '.join(t.slug for t in self.changed)})" if self.changed else ""),
            f"{len(self.unchanged)} unchanged",
        ]
        return ", ".join(parts)


def export_templates(templates: Iterable[Template]) -> dict[str, Any]:
    """`{templates: [...]}`: a fragment of lavahub.yaml, and what `import` reads back."""
    return {"templates": [t.to_dict() for t in templates]}


def plan_import(raw: Any, existing: Iterable[Template], known_projects: set[str]) -> ImportPlan:
    """Validate every entry of `raw` (a list, or a mapping with `templates`) against the catalogue."""
    plan = ImportPlan()
    entries = raw.get("templates") if isinstance(raw, Mapping) else raw
    if not isinstance(entries, list):
        plan.errors.append("templates: must be a list of templates (or a mapping with a `templates` list)")
        return plan
    current = {t.slug: t for t in existing}
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        path = f"templates[{i}]"
        try:
            template = template_from_dict(entry, path, known_projects=known_projects)
        except PublicError as e:
            plan.errors.append(str(e))
            continue
        if template.slug in seen:
            plan.errors.append(f"{path}.slug: {template.slug!r} is also templates[{seen[template.slug]}]")
            continue
        seen[template.slug] = i
        before = current.get(template.slug)
        if before is None:
            plan.added.append(template)
        elif before.to_dict() == template.to_dict():
            plan.unchanged.append(template.slug)
        else:
            plan.changed.append(template)
    return plan

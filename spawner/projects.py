"""Projects: JupyterHub groups whose `properties` carry quota, queue and node pool.

Membership always comes from JupyterHub; the config only seeds it. Both the
hub (reading `user.groups`) and the CLI (reading the config) build the same
`Project` records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import checks
from .names import SLUG_PATTERN, SLUG_RULE, USER_PATTERN, USER_RULE
from .resources import Quota

PROJECT_KEYS = ("members", "quota", "queue", "node_pool")


@dataclass(frozen=True)
class Project:
    name: str
    members: tuple[str, ...] = ()
    quota: Quota = field(default_factory=Quota)
    queue: str = "default"
    node_pool: str | None = None

    def to_properties(self) -> dict[str, Any]:
        """The JupyterHub group `properties` that carry this project's settings."""
        props: dict[str, Any] = {"lavahub": True, "quota": self.quota.to_dict(), "queue": self.queue}
        if self.node_pool:
            props["node_pool"] = self.node_pool
        return props


def project_from_dict(name: str, data: Any, path: str) -> Project:
    checks.string(name, path, pattern=SLUG_PATTERN, rule=SLUG_RULE)
    data = checks.mapping(data, path)
    checks.no_unknown_keys(data, PROJECT_KEYS, path)
    at = lambda key: checks.where(path, key)  # noqa: E731
    members = checks.string_list(data.get("members"), at("members"), pattern=USER_PATTERN, rule=USER_RULE)
    quota = _quota(data.get("quota"), at("quota"))
    queue = checks.string(data.get("queue", "default"), at("queue"), pattern=SLUG_PATTERN, rule=SLUG_RULE)
    node_pool = data.get("node_pool")
    if node_pool is not None:
        node_pool = checks.string(node_pool, at("node_pool"))
    return Project(name=name, members=tuple(members), quota=quota, queue=queue, node_pool=node_pool)


def project_from_group(name: str, properties: Mapping[str, Any] | None, members: Iterable[str]) -> Project:
    """A project from a JupyterHub group; properties were validated when they were written."""
    props = dict(properties or {})
    return project_from_dict(
        name,
        {
            "members": list(members),
            "quota": props.get("quota") or {},
            "queue": props.get("queue", "default"),
            "node_pool": props.get("node_pool"),
        },
        f"group {name!r} properties",
    )


def _quota(value: Any, path: str) -> Quota:
    data = checks.mapping(value, path)
    checks.no_unknown_keys(data, ("gpus", "cpus", "memory"), path)
    gpus = data.get("gpus")
    cpus = data.get("cpus")
    mem = data.get("memory")
    return Quota(
        gpus=None if gpus is None else checks.whole(gpus, checks.where(path, "gpus")),
        cpus=None if cpus is None else checks.number(cpus, checks.where(path, "cpus"), positive=False),
        memory=None if mem is None else checks.memory(mem, checks.where(path, "memory")),
    )

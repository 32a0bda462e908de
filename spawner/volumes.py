"""The volume plan: which personal, project and global storage a workspace mounts.

One plan serves both backends: Kubernetes renders it as claims + subPaths,
the local backend as directories under the storage root.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .names import safe_segment

if TYPE_CHECKING:
    from lavahub.config import KubernetesStorage

PERSONAL, PROJECT, GLOBAL = "personal", "project", "global"
KINDS = (PERSONAL, PROJECT, GLOBAL)


@dataclass(frozen=True)
class Volume:
    kind: str
    source: str  # the claim (kubernetes) or the storage root (local)
    sub_path: str
    mount_path: str
    read_only: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind, "source": self.source, "sub_path": self.sub_path,
            "mount_path": self.mount_path, "read_only": self.read_only,
        }  # fmt: skip


def volume_plan(
    user: str, project: str, *, admin: bool, sources: Mapping[str, str], home: str
) -> tuple[Volume, ...]:
    """Personal (home, owner only), project (members) and global (read-only for users)."""
    project_dir = safe_segment(project)
    return (
        Volume(PERSONAL, sources[PERSONAL], f"users/{safe_segment(user)}", home, False),
        Volume(PROJECT, sources[PROJECT], f"projects/{project_dir}", f"/mnt/projects/{project_dir}", False),
        Volume(GLOBAL, sources[GLOBAL], "global", "/mnt/global", not admin),
    )


def local_volume_plan(user: str, project: str, *, admin: bool, root: Path) -> tuple[Volume, ...]:
    """The same plan as directories: each volume is `<root>/<sub path>`, seen where it lies."""
    plan = volume_plan(user, project, admin=admin, sources=dict.fromkeys(KINDS, str(root)), home="")
    return tuple(replace(v, mount_path=str(root / v.sub_path)) for v in plan)


def kube_volume_plan(
    user: str, project: str, *, admin: bool, storage: KubernetesStorage
) -> tuple[Volume, ...]:
    """The same plan as the claims of `storage.kubernetes`, the personal one as the home."""
    sources = {PERSONAL: storage.personal_claim, PROJECT: storage.project_claim, GLOBAL: storage.global_claim}
    return volume_plan(user, project, admin=admin, sources=sources, home=storage.home_mount)


def by_kind(plan: tuple[Volume, ...]) -> dict[str, Volume]:
    return {v.kind: v for v in plan}

"""What the local backend does for one workspace: command, environment, directories.

Pure, so `lavahub render-workspace` prints exactly what the local spawner would do.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .accounts import Account
from .gpus import Gpu
from .names import safe_segment
from .ownership import GLOBAL_MODE, PERSONAL_MODE, PROJECT_MODE, PUBLIC_MODE, Owner, link_home, own
from .resources import format_cpus, format_memory
from .volumes import GLOBAL, PERSONAL, PROJECT, Volume, by_kind, local_volume_plan
from .workspace import WorkspaceRequest, workspace_env

log = logging.getLogger(__name__)


def singleuser_command() -> tuple[str, ...]:
    """jupyterhub-singleuser from the hub's own environment, not whatever PATH finds first."""
    beside = Path(sys.executable).with_name("jupyterhub-singleuser")
    return (str(beside),) if beside.exists() else ("jupyterhub-singleuser",)


@dataclass(frozen=True)
class LocalWorkspacePlan:
    request: WorkspaceRequest
    volumes: tuple[Volume, ...]
    gpus: tuple[Gpu, ...]
    cmd: tuple[str, ...]
    args: tuple[str, ...]
    env: dict[str, str]
    links: dict[str, str]  # link in the personal dir -> the directory it opens
    account: Account | None = None  # the OS account it runs as; None: the platform's own

    @property
    def home(self) -> Path:
        return Path(by_kind(self.volumes)[PERSONAL].mount_path)

    def to_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "backend": "local",
            "user": r.user,
            "project": r.project.name,
            "template": {
                "slug": r.template.slug,
                "version": r.template.version,
                "image": f"{r.template.image} (not used: local workspaces run this machine's Python)",
            },
            "resources": r.resources.to_dict(),
            "gpus": [g.to_dict() for g in self.gpus],
            "command": [*self.cmd, *self.args],
            "runs_as": self.account.name if self.account else "the platform's own OS user",
            "working_dir": str(self.home),
            "environment": dict(sorted(self.env.items())),
            "directories": [v.to_dict() for v in self.volumes],
            "links": self.links,
        }  # fmt: skip


def plan_local_workspace(
    request: WorkspaceRequest,
    *,
    root: Path,
    gpus: Sequence[Gpu],
    cmd: Sequence[str] | None = None,
    as_root: bool | None = None,
    account: Account | None = None,
) -> LocalWorkspacePlan:
    volumes = local_volume_plan(request.user, request.project.name, admin=request.admin, root=root)
    mounts = by_kind(volumes)
    home = Path(mounts[PERSONAL].mount_path)
    env = workspace_env(request, volumes)
    env.update(
        # PCI order makes CUDA's device numbers match NVML's indices.
        CUDA_DEVICE_ORDER="PCI_BUS_ID",
        CUDA_VISIBLE_DEVICES=",".join(str(g.index) for g in gpus),
        CPU_LIMIT=format_cpus(request.resources.cpus),
        MEM_LIMIT=str(request.resources.memory),
        LAVAHUB_MEMORY=format_memory(request.resources.memory),
        # a python3 kernelspec there loads the %%job magic into every kernel
        JUPYTER_PATH=str(jupyter_dir(root)),
    )
    if account is not None:
        as_root = False
        env.update(USER=account.name, LOGNAME=account.name)
    elif as_root is None:
        as_root = os.geteuid() == 0
    links = {
        str(home / "projects" / Path(mounts[PROJECT].sub_path).name): mounts[PROJECT].mount_path,
        str(home / "global"): mounts[GLOBAL].mount_path,
    }
    return LocalWorkspacePlan(
        request=request,
        volumes=volumes,
        gpus=tuple(gpus),
        cmd=tuple(cmd) if cmd is not None else singleuser_command(),
        # jupyterhub-singleuser refuses to run as root without this flag.
        args=("--allow-root",) if as_root else (),
        env=env,
        links=links,
        account=account,
    )


def personal_dir(root: Path, user: str) -> Path:
    """Where `user`'s personal volume is under the storage root (as the volume plan puts it)."""
    return root / "users" / safe_segment(user)


def jupyter_dir(root: Path) -> Path:
    return root / ".lavahub" / "jupyter"


def write_kernelspec(directory: Path) -> None:
    """The workspace's `python3` kernel: this Python, with the lavahub magics loaded.

    Root's and readable by every account: no user may change what other users' kernels run."""
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--ext=lavahub_jupyter",
        ],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    path = directory / "kernels" / "python3" / "kernel.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    for d in (directory, directory / "kernels", path.parent):
        d.chmod(PUBLIC_MODE)
    text = json.dumps(spec, indent=1)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    path.chmod(0o644)


def volume_owners(account: Account, project_gid: int, admins_gid: int) -> dict[str, Owner]:
    """Who owns each volume's directory (spawner/ownership.py draws the whole tree)."""
    return {
        PERSONAL: Owner(account.uid, account.gid, PERSONAL_MODE),
        PROJECT: Owner(0, project_gid, PROJECT_MODE),
        GLOBAL: Owner(0, admins_gid, GLOBAL_MODE),
    }


def prepare_directories(
    plan: LocalWorkspacePlan, member_of: Iterable[str], owners: dict[str, Owner] | None = None
) -> None:
    """Create the volume directories and the links that make them reachable from JupyterLab.

    With `owners` (users have OS accounts) each directory gets its owner and mode.
    Links to projects the user has left are removed (the user's own files stay);
    links of the user's other projects stay, as their other workspaces use them.
    """
    for volume in plan.volumes:
        path = Path(volume.mount_path)
        if owners is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            own(path, owners[volume.kind])
    write_kernelspec(Path(plan.env["JUPYTER_PATH"]))
    keep = {safe_segment(name) for name in member_of}
    link_home(plan.home, plan.links, keep, owners[PERSONAL] if owners else None)

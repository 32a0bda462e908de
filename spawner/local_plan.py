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

from .gpus import Gpu
from .names import safe_segment
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
    if as_root is None:
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
    )


def jupyter_dir(root: Path) -> Path:
    return root / ".lavahub" / "jupyter"


def write_kernelspec(directory: Path) -> None:
    """The workspace's `python3` kernel: this Python, with the lavahub magics loaded."""
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
    text = json.dumps(spec, indent=1)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def prepare_directories(plan: LocalWorkspacePlan, member_of: Iterable[str]) -> None:
    """Create the volume directories and the links that make them reachable from JupyterLab.

    Links to projects the user has left are removed (the user's own files stay);
    links of the user's other projects stay, as their other workspaces use them.
    """
    for volume in plan.volumes:
        Path(volume.mount_path).mkdir(parents=True, exist_ok=True)
    write_kernelspec(Path(plan.env["JUPYTER_PATH"]))
    projects_dir = plan.home / "projects"
    projects_dir.mkdir(exist_ok=True)
    keep = {safe_segment(name) for name in member_of}
    for stale in projects_dir.iterdir():
        if stale.is_symlink() and stale.name not in keep:
            stale.unlink()
    for link, target in plan.links.items():
        path = Path(link)
        if path.is_symlink():
            if os.readlink(path) == target:
                continue
            path.unlink()
        elif path.exists():
            log.warning("Not linking %r: a file or directory of that name already exists", str(path))
            continue
        path.symlink_to(target, target_is_directory=True)

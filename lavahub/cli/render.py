"""`lavahub render-workspace`: what a spawn would produce, without starting anything."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from lavahub.config import PlatformConfig, load_config
from spawner.gpus import GpuAllocator, inventory
from spawner.local_plan import plan_local_workspace
from spawner.options import resolve_options
from spawner.resources import check_quota
from spawner.workspace import WorkspaceRequest

from .args import config_arg
from .templates import catalogue


def add_commands(sub: Any) -> None:
    render = sub.add_parser(
        "render-workspace",
        help="print what a spawn would produce, without starting anything",
        description="Print (YAML) what starting this workspace would produce: for the local backend "
        "the command, environment and directories.",
    )
    render.add_argument("--user", required=True, help="the JupyterHub user name")
    render.add_argument("--project", help="project (default: the user's first project)")
    render.add_argument("--template", help="template slug (default: the project's first template)")
    render.add_argument("--gpus", type=int, help="GPUs (default: the template's)")
    render.add_argument("--cpus", type=float, help="CPUs (default: the template's)")
    render.add_argument("--memory", help="memory such as 8Gi (default: the template's)")
    render.add_argument("--gpu-type", help="GPU model, one of the template's gpu_types")
    render.add_argument("--backend", choices=("local", "kubernetes"), help="default: the config's backend")
    config_arg(render)
    render.set_defaults(run=cmd_render_workspace)


def cmd_render_workspace(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    backend = args.backend or config.backend
    projects = {name: p for name, p in config.projects.items() if args.user in p.members}
    options = {
        key: value
        for key, value in {
            "project": args.project, "template": args.template, "gpus": args.gpus,
            "cpus": args.cpus, "memory": args.memory, "gpu_type": args.gpu_type,
        }.items()
        if value is not None
    }  # fmt: skip
    request = resolve_options(
        options,
        user=args.user,
        admin=args.user in config.admins,
        projects=projects,
        templates=catalogue(config),
    )
    # a dry run sees no running workspaces: the request alone must fit the project's quota
    check_quota(request.project.name, request.project.quota, request.resources, {})
    if backend == "kubernetes":
        yaml.safe_dump(render_kubernetes(config, request), sys.stdout, sort_keys=False)
        return 0
    gpus = GpuAllocator(inventory()).allocate(args.user, request.resources.gpus, request.gpu_type)
    plan = plan_local_workspace(request, root=config.local_root, gpus=gpus)
    yaml.safe_dump(plan.to_dict(), sys.stdout, sort_keys=False)
    return 0


def render_kubernetes(config: PlatformConfig, request: WorkspaceRequest) -> dict[str, Any]:
    """The pod, from KubeSpawner itself. It loads a client config when constructed, and
    kubernetes_asyncio reads $KUBECONFIG on import: without one, name a placeholder
    (never contacted) before importing it."""
    import asyncio
    import atexit
    import shutil
    import tempfile

    no_config = not Path(os.environ.get("KUBECONFIG") or "~/.kube/config").expanduser().exists()
    if no_config and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        folder = tempfile.mkdtemp(prefix="lavahub-render-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        (Path(folder) / "kubeconfig").write_text(PLACEHOLDER_KUBECONFIG)
        os.environ["KUBECONFIG"] = str(Path(folder) / "kubeconfig")

    from spawner.kube import render_pod

    return asyncio.run(render_pod(request, storage=config.kubernetes_storage, settings=config.kubernetes))


PLACEHOLDER_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""

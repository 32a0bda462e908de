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
    add_job_commands(sub)


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


def add_job_commands(sub: Any) -> None:
    render = sub.add_parser(
        "render-job",
        help="print the Volcano Job a cell would become, without a cluster",
        description="Print (YAML) the Volcano Job and the ConfigMap carrying the cell that submitting "
        "CELL_FILE as a job would create on the kubernetes backend. Nothing is contacted.",
    )
    render.add_argument("cell", metavar="CELL_FILE", help="the cell's Python source ('-' reads stdin)")
    render.add_argument("--user", required=True, help="the JupyterHub user name")
    render.add_argument("--project", help="project (default: the user's first project)")
    render.add_argument("--template", help="template slug (default: the project's first template)")
    render.add_argument("--workers", default="1", help="N, or MIN:MAX for an elastic job (default 1)")
    render.add_argument("--gpus", type=int, help="GPUs per worker (default: the template's)")
    render.add_argument("--cpus", type=float, help="CPUs per worker (default: the template's)")
    render.add_argument("--memory", help="memory per worker such as 8Gi (default: the template's)")
    render.add_argument("--framework", default="python", help="python, pytorch, mpi or ray")
    render.add_argument("--name", help="the job's label (default: cell)")
    render.add_argument("--timeout", type=int, help="seconds it may run")
    config_arg(render)
    render.set_defaults(run=cmd_render_job)


def cmd_render_job(args: argparse.Namespace) -> int:
    from lavahub.config import parse_config
    from services.jobs.backends.volcano.backend import CAPABILITIES
    from services.jobs.backends.volcano.render import RenderError, render
    from services.jobs.spec import Caller, new_job_id, validate_submission
    from spawner.errors import PublicError
    from spawner.volumes import kube_volume_plan

    config = load_config(args.config)
    if config.backend != "kubernetes" or config.jobs.backend != "volcano":
        # what the cluster would run: the same platform, on Kubernetes with Volcano
        data = config.model_dump(mode="json", exclude_unset=True)
        data.update(backend="kubernetes", bind="0.0.0.0")
        data.setdefault("jobs", {})["backend"] = "volcano"
        config = parse_config(data)
    code = sys.stdin.read() if args.cell == "-" else Path(args.cell).read_text()
    workers, _, most = args.workers.partition(":")
    try:
        low, high = int(workers), int(most) if most else None
    except ValueError:
        raise PublicError(f"--workers must be N or MIN:MAX, got {args.workers!r}") from None
    body: dict[str, Any] = {"code": code, "framework": args.framework, "workers": high or low}
    if high is not None:
        body["min_workers"] = low
    for key in ("project", "template", "gpus", "cpus", "memory", "name", "timeout"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    caller = Caller(args.user, admin=args.user in config.admins)
    projects = {name: p for name, p in config.projects.items() if args.user in p.members}
    project = args.project or next(iter(projects), "default")
    spec = validate_submission(
        body,
        caller=caller,
        projects=projects,
        templates=catalogue(config),
        limits=config.jobs,
        capabilities=CAPABILITIES,
        capacity=None,
        volumes=kube_volume_plan(args.user, project, admin=caller.admin, storage=config.kubernetes_storage),
        job_id=new_job_id(),
    )
    try:
        rendered = render(
            spec,
            namespace=config.jobs_namespace,
            volcano=config.jobs.volcano,
            settings=config.kubernetes,
            storage=config.kubernetes_storage,
            result_token="<made at submission>",
        )
    except RenderError as e:
        raise PublicError(str(e)) from None
    documents = [rendered.job] if rendered.files is None else [rendered.job, rendered.files]
    yaml.safe_dump_all(documents, sys.stdout, sort_keys=False)
    return 0

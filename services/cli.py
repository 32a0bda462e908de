"""The `lavahub` command: start the platform, and show what a spawn would do.

Every refusal is one line on stderr and exit status 2; no traceback reaches a user.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from lavahub.config import PlatformConfig, load_config
from lavahub.credentials import ensure_credentials
from lavahub.paths import hub_config_file, proxy_command
from spawner.catalogue import export_templates, plan_import
from spawner.errors import PublicError
from spawner.gpus import GpuAllocator, inventory
from spawner.local_plan import plan_local_workspace
from spawner.options import resolve_options
from spawner.resources import check_quota
from spawner.store import TemplateStore, sqlite_file
from spawner.templates import Template
from spawner.workspace import WorkspaceRequest

T = TypeVar("T")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except PublicError as e:
        print(f"lavahub: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if os.environ.get("LAVAHUB_DEBUG"):
            raise
        print(
            f"lavahub: internal error: {type(e).__name__}: {e} (LAVAHUB_DEBUG=1 shows details)",
            file=sys.stderr,
        )
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavahub", description="lavahub: JupyterHub workspaces for ML teams."
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    up = sub.add_parser("up", help="start the platform (hub, proxy, workspaces) from the config")
    _config_arg(up)
    up.set_defaults(run=cmd_up)

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
    _config_arg(render)
    render.set_defaults(run=cmd_render_workspace)

    down = sub.add_parser(
        "down",
        help="stop what `up` leaves running in the background (the local Ray cluster)",
        description="The local Ray cluster outlives `lavahub up` so that running jobs survive a restart "
        "of the hub or the jobs service; this stops it.",
    )
    _config_arg(down)
    down.set_defaults(run=cmd_down)

    templates = sub.add_parser(
        "templates",
        help="list, export and import the image templates",
        description="The template catalogue in lavahub's database (what the spawn form offers). "
        "Export writes YAML in the shape of the config's `templates`; import reads it back, "
        "checks every entry before writing any, and adds a version only where something changed.",
    )
    template_actions = templates.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = template_actions.add_parser("list", help="every template, with its version")
    listing.set_defaults(run=cmd_templates_list)
    export = template_actions.add_parser("export", help="print the catalogue as YAML")
    export.set_defaults(run=cmd_templates_export)
    load = template_actions.add_parser("import", help="add or change templates from a YAML file")
    load.add_argument("file", help="the YAML file, or - for standard input")
    load.add_argument("--dry-run", action="store_true", help="check and say what would change; write nothing")
    load.add_argument(
        "--author", default=os.environ.get("USER") or "cli", help="recorded in each new version"
    )
    load.set_defaults(run=cmd_templates_import)
    for action in (listing, export, load):
        _config_arg(action)

    jobs = sub.add_parser("jobs", help="list, follow and cancel your distributed jobs")
    actions = jobs.add_subparsers(title="actions", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="your jobs, newest first")
    listing.set_defaults(run=cmd_jobs_list)
    logs = actions.add_parser("logs", help="a job's output, every worker's lines prefixed [worker-N]")
    logs.add_argument("id", help="the job id")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(run=cmd_jobs_logs)
    cancel = actions.add_parser("cancel", help="cancel a job (every worker stops)")
    cancel.add_argument("id", help="the job id")
    cancel.set_defaults(run=cmd_jobs_cancel)
    for action in (listing, logs, cancel):
        action.add_argument(
            "--url", help="the jobs service (default: $LAVAHUB_JOBS_URL, set in every workspace)"
        )
        action.add_argument("--token", help="a hub API token (default: $JUPYTERHUB_API_TOKEN)")
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE",
        help="platform config (default: $LAVAHUB_CONFIG, else the built-in embedded defaults)",
    )  # fmt: skip


def cmd_up(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials, created = ensure_credentials(config)
    proxy = proxy_command()
    if proxy is None:
        raise PublicError(
            "configurable-http-proxy is not installed",
            hint="run `make install` (it installs it into node_modules/), or set LAVAHUB_PROXY_COMMAND",
        )
    url = f"http://{config.bind if ':' not in config.bind else f'[{config.bind}]'}:{config.port}"
    print(f"lavahub ({config.backend} backend) is starting at {url}")
    print(f"  config:         {config.source or 'built-in embedded defaults'}")
    print(f"  data:           {config.data_dir}")
    print(f"  admin users:    {', '.join(config.admins)}")
    print(f"  users:          {', '.join(u for u in config.users if u not in config.admins)}")
    if created:
        print(f"  admin password: {credentials.admin_password}")
        print(f"  user password:  {credentials.user_password}")
        print(f"  (passwords are shown once; they are kept in {config.credentials_file}, mode 0600)")
    elif config.admin_password and config.user_password:
        print("  passwords:      from the config")
    else:
        print(f"  passwords:      in {config.credentials_file}")
    sys.stdout.flush()

    env = dict(os.environ, LAVAHUB_PROXY_COMMAND=proxy)
    if config.source:
        env["LAVAHUB_CONFIG"] = str(config.source)
    else:
        env.pop("LAVAHUB_CONFIG", None)
    jupyterhub = str(Path(sys.executable).with_name("jupyterhub"))
    if not Path(jupyterhub).exists():
        jupyterhub = "jupyterhub"
    os.chdir(config.data_dir)
    os.execvpe(jupyterhub, [jupyterhub, "-f", str(hub_config_file())], env)
    return 0  # not reached


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


def cmd_down(args: argparse.Namespace) -> int:
    from .jobs.backends.ray import RayBackend

    config = load_config(args.config)
    if config.jobs.ray.address:
        print(f"lavahub uses the Ray cluster at {config.jobs.ray.address}; it is not lavahub's to stop")
        return 0
    stopped = RayBackend(state_dir=str(config.data_dir / "ray")).stop_local_head()
    print(
        f"stopped the local Ray cluster ({stopped} processes)"
        if stopped
        else "no local Ray cluster was running"
    )
    return 0


def jobs_client(args: argparse.Namespace) -> Any:
    """The notebook package's client (imported here only: the hub's own commands do not need it)."""
    try:
        from lavahub_jupyter.client import JobsClient
    except ImportError:
        raise PublicError(
            "lavahub jobs needs the lavahub-jupyter package", hint="pip install extensions/lavahub-jupyter"
        ) from None
    url = args.url or os.environ.get("LAVAHUB_JOBS_URL")
    token = args.token or os.environ.get("JUPYTERHUB_API_TOKEN")
    if not url or not token:
        raise PublicError(
            "the jobs service is not known here",
            hint="run this in a lavahub workspace's terminal, or pass --url and --token",
        )
    return JobsClient(url, token)


def _jobs_call(call: Callable[[], T]) -> T:
    """Run a client call; its errors become one line, like every other refusal."""
    from lavahub_jupyter.client import JobsError

    try:
        return call()
    except JobsError as e:
        raise PublicError(e.message, hint=e.hint) from None


def cmd_jobs_list(args: argparse.Namespace) -> int:
    client = jobs_client(args)
    jobs = _jobs_call(client.list_jobs)
    print(f"{'ID':<17} {'NAME':<16} {'STATE':<10} {'PROJECT':<12} {'WORKERS':>7}  CREATED")
    for job in jobs:
        print(
            f"{job.id:<17} {(job.name or '')[:16]:<16} {job.state:<10} {(job.project or '')[:12]:<12} "
            f"{job.workers or 0:>7}  {(job.created or '')[:19]}"
        )
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    client = jobs_client(args)
    if not args.follow:
        for line in _jobs_call(lambda: client.logs(args.id)):
            print(line)
        return 0

    def follow() -> None:
        with client.follow_logs(args.id) as stream:
            for line in stream:
                print(line, flush=True)

    _jobs_call(follow)
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    client = jobs_client(args)
    job = _jobs_call(lambda: client.cancel_job(args.id))
    print(f"job {job.id} {job.state}{f' ({job.reason})' if job.reason else ''}")
    return 0


def template_store_of(config: PlatformConfig) -> TemplateStore:
    """The platform's store, seeded from the config as the hub seeds it at start."""
    store = TemplateStore(config.database_url)
    store.seed(config.templates)
    return store


def cmd_templates_list(args: argparse.Namespace) -> int:
    templates = template_store_of(load_config(args.config)).list()
    rows = [("SLUG", "VERSION", "ENABLED", "PROJECTS", "IMAGE")] + [
        (t.slug, str(t.version), "yes" if t.enabled else "no", ",".join(t.projects) or "all", t.image)
        for t in templates
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    return 0


def cmd_templates_export(args: argparse.Namespace) -> int:
    templates = template_store_of(load_config(args.config)).list()
    yaml.safe_dump(export_templates(templates), sys.stdout, sort_keys=False)
    return 0


def cmd_templates_import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    source = "standard input" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        raw = yaml.safe_load(text)
    except OSError as e:
        raise PublicError(f"cannot read {source}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise PublicError(f"{source} is not valid YAML: {getattr(e, 'problem', None) or e}") from None
    store = template_store_of(config)
    plan = plan_import(raw, store.list(), set(config.projects))
    if plan.errors:
        for error in plan.errors:
            print(f"lavahub: error: {source}: {error}", file=sys.stderr)
        print(f"lavahub: nothing imported ({len(plan.errors)} errors)", file=sys.stderr)
        return 2
    if not args.dry_run:
        store.put_many(plan.writes, author=args.author)
    print(plan.summary(dry_run=args.dry_run))
    return 0


def catalogue(config: PlatformConfig) -> list[Template]:
    """The templates a spawn would see: the store's if the platform has run, else the config's."""
    db_file = sqlite_file(config.database_url)
    if db_file is not None and not db_file.exists():
        return list(config.templates)
    return TemplateStore(config.database_url, create=False).list()


if __name__ == "__main__":
    sys.exit(main())

"""`lavahub jobs list|logs|cancel`: your distributed jobs, through the jobs service's API."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, TypeVar

from spawner.errors import PublicError

from .args import actions

T = TypeVar("T")


def add_commands(sub: Any) -> None:
    jobs = actions(sub, "jobs", help="list, follow and cancel your distributed jobs")
    listing = jobs.add_parser("list", help="your jobs, newest first")
    listing.set_defaults(run=cmd_jobs_list)
    logs = jobs.add_parser("logs", help="a job's output, every worker's lines prefixed [worker-N]")
    logs.add_argument("id", help="the job id")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(run=cmd_jobs_logs)
    cancel = jobs.add_parser("cancel", help="cancel a job (every worker stops)")
    cancel.add_argument("id", help="the job id")
    cancel.set_defaults(run=cmd_jobs_cancel)
    for action in (listing, logs, cancel):
        action.add_argument(
            "--url", help="the jobs service (default: $LAVAHUB_JOBS_URL, set in every workspace)"
        )
        action.add_argument("--token", help="a hub API token (default: $JUPYTERHUB_API_TOKEN)")


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

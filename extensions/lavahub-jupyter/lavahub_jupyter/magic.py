"""The magics: ``%%job`` runs a cell as a distributed job; ``%jobs``, ``%job_logs``, ``%job_cancel``.

Every failure the user can act on is a ``LavahubError`` (the HTTP client's
``JobsError`` is one), which IPython shows as one line, never as a traceback.
"""

from __future__ import annotations

import argparse
import keyword
import os
import sys
from datetime import datetime
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from . import payload
from .client import Job, JobRequest, JobsClient, JobsError
from .errors import LavahubError
from .watch import JobWatcher, short_id

PROJECT_ENV = "LAVAHUB_PROJECT"
TEMPLATE_ENV = "LAVAHUB_TEMPLATE"


class JobFailed(LavahubError):
    """The job ended as failed or was cancelled by someone else; names the exit code and reason."""

    def __init__(self, job: Job) -> None:
        if job.state == "cancelled":
            message = f"job {job.id} was cancelled"
        elif job.exit_code is not None:
            message = f"job {job.id} failed with exit code {job.exit_code}"
        else:
            message = f"job {job.id} failed"
        super().__init__(message, job.reason)
        self.job = job


def _count(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} is less than {minimum}")
        return value

    return parse


def _workers(text: str) -> tuple[int, int | None]:
    """`N`, or `MIN:MAX` for an elastic job (the gang starts with MIN, up to MAX)."""
    low, colon, high = text.partition(":")
    count = _count(1)
    if not colon:
        return count(low), None
    least, most = count(low), count(high)
    if least > most:
        raise argparse.ArgumentTypeError(f"{text!r}: MIN is more than MAX")
    return most, least


def _cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not more than 0")
    return value


def _variable(text: str) -> str:
    if not text.isidentifier() or keyword.iskeyword(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a variable name")
    return text


def _parse(magic: Any, line: str) -> argparse.Namespace:
    try:
        return parse_argstring(magic, line)
    except UsageError as exc:
        name = magic.__name__
        prefix = "%%" if name == "job" else "%"
        raise LavahubError(str(exc), f"see {prefix}{name}? for the options") from None


def _when(timestamp: str | None) -> str:
    if not timestamp:
        return "-"
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_jobs(jobs: list[Job]) -> str:
    """A plain-text table of jobs, one row each."""
    rows = [("ID", "NAME", "STATE", "PROJECT", "WORKERS", "CREATED")]
    for job in jobs:
        rows.append(
            (
                job.id,
                job.name or "-",
                job.state,
                job.project or "-",
                "-" if job.workers is None else str(job.workers),
                _when(job.created),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


@magics_class
class JobMagics(Magics):
    """Run notebook cells as distributed jobs through lavahub's jobs service."""

    def _client(self) -> JobsClient:
        return JobsClient.from_env(os.environ)

    @property
    def _user_ns(self) -> dict[str, Any]:
        """The notebook's variables (IPython types `shell` Optional; registered magics have one)."""
        assert self.shell is not None
        return self.shell.user_ns

    # -- %%job ---------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "--workers",
        type=_workers,
        help="how many workers run the cell (each gets RANK, WORLD_SIZE); MIN:MAX for an elastic job",
    )
    @argument("--gpus", type=_count(0), help="GPUs per worker")
    @argument("--cpus", type=_cpus, help="CPUs per worker")
    @argument("--memory", help="memory per worker, like 4Gi")
    @argument("--framework", help="python, pytorch or ray")
    @argument("--project", help=f"the project the job runs in (default: ${PROJECT_ENV})")
    @argument("--template", help=f"the image template of the workers (default: ${TEMPLATE_ENV})")
    @argument("--name", help="a name to find the job by")
    @argument("--timeout", type=_count(1), help="seconds after which the job is stopped")
    @argument("--detach", action="store_true", help="print the job id and return at once")
    @argument(
        "--export",
        action="append",
        default=[],
        metavar="A,B",
        help="notebook variables to put into every worker's globals",
    )
    @argument(
        "--result", type=_variable, metavar="NAME", help="the variable rank 0 sends back into the notebook"
    )
    @cell_magic
    def job(self, line: str, cell: str) -> str | None:
        """Run this cell as a distributed job and stream its workers' logs here.

        Interrupting the kernel cancels the job. With --detach the job id is
        printed and returned at once; follow it with %job_logs ID.
        """
        args = _parse(self.job, line)
        if not cell.strip():
            raise LavahubError("the cell is empty", "write the code to run below the %%job line")
        client = self._client()
        request = self._request(args, cell)
        job = client.submit(request)
        if args.detach:
            print(f"job {job.id} submitted; follow it with %job_logs {job.id}", flush=True)
            return job.id
        print(f"job {job.id} submitted: {_describe(job)}", flush=True)
        try:
            job = JobWatcher(client, job).run()
        except KeyboardInterrupt as interrupt:
            self._cancel_after_interrupt(client, job, interrupt)
            raise
        if job.state != "succeeded":
            self._explain_failure(client, job)
            raise JobFailed(job)
        if args.result:
            self._receive_result(client, job, args.result)
        return None

    def _request(self, args: argparse.Namespace, cell: str) -> JobRequest:
        request: JobRequest = {"code": cell, "cwd": os.getcwd()}
        for key in ("framework", "gpus", "cpus", "memory", "name", "timeout", "result"):
            value = getattr(args, key)
            if value is not None:
                request[key] = value
        if args.workers is not None:
            request["workers"], least = args.workers
            if least is not None:
                request["min_workers"] = least
        project = args.project or os.environ.get(PROJECT_ENV)
        if project:
            request["project"] = project
        template = args.template or os.environ.get(TEMPLATE_ENV)
        if template:
            request["template"] = template
        names = [name.strip() for value in args.export for name in value.split(",") if name.strip()]
        if names:
            request["exports"] = payload.pack(self._exported(names))
        return request

    def _exported(self, names: list[str]) -> dict[str, Any]:
        namespace = self._user_ns
        missing = [name for name in names if name not in namespace]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise LavahubError(
                f"cannot export {listed}: no such variable in the notebook",
                "run the cell that defines it first",
            )
        return {name: namespace[name] for name in names}

    def _cancel_after_interrupt(self, client: JobsClient, job: Job, interrupt: KeyboardInterrupt) -> None:
        """Cancel the job the user stopped watching; the interrupt says what became of it, in one
        line and once (the cell still ends interrupted, so Run All stops there)."""
        try:
            client.cancel_job(job.id)
        except JobsError as exc:
            note = f"KeyboardInterrupt: job {job.id} may still be running: it could not be cancelled ({exc})"
        else:
            note = f"KeyboardInterrupt: job {job.id} cancelled"
        # IPython shows this line instead of a traceback through this module
        interrupt._render_traceback_ = lambda: [note]  # type: ignore[attr-defined]

    def _explain_failure(self, client: JobsClient, job: Job) -> None:
        """Print the failing worker's last lines and what to try, as the service explains them."""
        try:
            explanation = client.explain(job.id)
        except JobsError:
            return
        lines = []
        if explanation.summary:
            lines.append(explanation.summary)
        lines.extend(explanation.details)
        lines.extend(f"hint: {suggestion}" for suggestion in explanation.suggestions)
        if lines:
            print("\n".join(lines), file=sys.stderr, flush=True)

    def _receive_result(self, client: JobsClient, job: Job, name: str) -> None:
        try:
            encoded = client.result(job.id)
        except JobsError as exc:
            if exc.status != 404:
                raise
            raise LavahubError(
                f"job {job.id} sent back no result {name!r}",
                exc.hint or f"assign {name} on rank 0 before the cell ends",
            ) from None
        self._user_ns[name] = payload.unpack(encoded)
        print(f"result {name} received", flush=True)

    # -- %jobs, %job_logs, %job_cancel ----------------------------------------------

    @line_magic
    def jobs(self, line: str) -> None:
        """List your jobs, newest first."""
        if line.strip():
            raise LavahubError(f"%jobs takes no arguments, got {line.strip()!r}")
        jobs = self._client().list_jobs()
        print(format_jobs(jobs) if jobs else "lavahub: no jobs yet", flush=True)

    @magic_arguments()
    @argument("id", help="the job's id (see %%jobs)")
    @line_magic
    def job_logs(self, line: str) -> None:
        """Print the logs a job has written so far."""
        args = _parse(self.job_logs, line)
        for log_line in self._client().logs(args.id):
            print(log_line)
        sys.stdout.flush()

    @magic_arguments()
    @argument("id", help="the job's id (see %%jobs)")
    @line_magic
    def job_cancel(self, line: str) -> None:
        """Cancel a job."""
        args = _parse(self.job_cancel, line)
        job = self._client().cancel_job(args.id)
        if job.state == "cancelled":
            print(f"lavahub: job {job.id} cancelled", flush=True)
        elif job.ended:
            print(f"lavahub: job {job.id} had already {job.state}", flush=True)
        else:
            print(f"lavahub: job {job.id} is being cancelled", flush=True)


def _describe(job: Job) -> str:
    parts = []
    if job.name:
        parts.append(job.name)
    if job.workers is not None:
        parts.append(f"{job.workers} worker" + ("" if job.workers == 1 else "s"))
    if job.framework:
        parts.append(job.framework)
    if job.project:
        parts.append(f"project {job.project}")
    return ", ".join(parts) or short_id(job.id)

"""Why a job is not running, or why it failed, in plain words. Pure: facts in, sentences out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spawner.resources import Resources, format_cpus, format_memory

from .backends.base import ClusterUsage
from .models import Job, JobState


def explain(
    job: Job,
    *,
    waiting_for: str | None,
    usage: ClusterUsage | None,
    ahead: Sequence[Job],
    failing_lines: Sequence[str],
) -> dict[str, Any]:
    """Explain `job` from what the backend and the store know.

    `ahead`: unfinished jobs submitted before this one; `failing_lines`: the failing worker's last lines.
    """
    total = job.resources * job.workers
    asks = f"{job.workers} worker{'s' if job.workers != 1 else ''} x ({job.resources.describe()})"
    details: list[str] = []
    suggestions: list[str] = []

    if job.state == JobState.PENDING:
        if waiting_for:
            summary = f"The job is waiting for {waiting_for}."
            details.append("Jobs submitted meanwhile are kept and start as soon as it is ready.")
        else:
            short = _short(total, usage) if usage else []
            if short:
                summary = (
                    "The job is waiting: the cluster does not have enough free "
                    + " and ".join(what for what, _ in short)
                    + " for all its workers at once."
                )
                details.extend(line for _, line in short)
                suggestions.append("ask for fewer workers or fewer resources per worker")
            else:
                summary = "The job is waiting for all its workers to be placed together."
            if ahead:
                details.append(
                    f"{len(ahead)} job{'s' if len(ahead) != 1 else ''} submitted earlier "
                    f"{'are' if len(ahead) != 1 else 'is'} still waiting or running: "
                    + ", ".join(f"{j.id} ({j.user}, {j.state.value})" for j in ahead[:5])
                )
                mine = [j for j in ahead if j.user == job.user]
                if mine:
                    suggestions.append(
                        "cancel one of your own earlier jobs: " + ", ".join(j.id for j in mine[:5])
                    )
        details.insert(0, f"It asks for {asks}.")
    elif job.state == JobState.FAILED:
        summary = f"The job failed: {job.reason or 'unknown reason'}"
        if job.exit_code is not None and "code" not in (job.reason or ""):
            summary += f" (exit code {job.exit_code})"
        summary += "."
        details.extend(failing_lines)
        if job.reason == "timeout":
            suggestions.append(f"raise --timeout (it was {job.timeout} s) or make the job shorter")
    elif job.state == JobState.RUNNING:
        summary = f"The job is running on all {job.workers} workers."
    elif job.state == JobState.SUCCEEDED:
        summary = "The job succeeded."
    else:
        summary = f"The job was cancelled{': ' + job.reason if job.reason else ''}."
    return {"state": job.state.value, "summary": summary, "details": details, "suggestions": suggestions}


def _short(need: Resources, usage: ClusterUsage) -> list[tuple[str, str]]:
    free = Resources(
        usage.total.cpus - usage.used.cpus,
        usage.total.memory - usage.used.memory,
        usage.total.gpus - usage.used.gpus,
    )
    short = []
    if need.gpus > free.gpus:
        short.append(("GPUs", f"GPUs: needs {need.gpus}, {free.gpus:g} of {usage.total.gpus:g} free."))
    if need.cpus > free.cpus:
        short.append(
            (
                "CPUs",
                f"CPUs: needs {format_cpus(need.cpus)}, {format_cpus(free.cpus)} of "
                f"{format_cpus(usage.total.cpus)} free.",
            )
        )
    if need.memory > free.memory:
        short.append(
            (
                "memory",
                f"memory: needs {format_memory(need.memory)}, {format_memory(max(free.memory, 0))} "
                f"of {format_memory(usage.total.memory)} free.",
            )
        )
    return short

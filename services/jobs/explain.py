"""Why a job is not running, or why it failed, in plain words. Pure: facts in, sentences out.

Backends report facts (`Diagnosis`); this one module words them, so every
backend explains itself in the same style.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spawner.resources import format_cpus, format_memory

from .backends.base import Diagnosis, Shortfall
from .models import Job, JobState


def explain(
    job: Job,
    *,
    diagnosis: Diagnosis | None,
    ahead: Sequence[Job],
    failing_lines: Sequence[str],
) -> dict[str, Any]:
    """Explain `job` from what the backend and the store know.

    `diagnosis`: the backend's facts about a pending job; `ahead`: unfinished jobs
    submitted before this one, by anyone (only the caller's own are named, the
    others are counted); `failing_lines`: the failing worker's last lines.
    """
    diagnosis = diagnosis or Diagnosis()
    asks = f"{job.workers} worker{'s' if job.workers != 1 else ''} x ({job.resources.describe()})"
    details: list[str] = []
    suggestions: list[str] = []

    if job.state == JobState.PENDING:
        if diagnosis.waiting_for:
            summary = f"The job is waiting for {diagnosis.waiting_for}."
            details.append("Jobs submitted meanwhile are kept and start as soon as it is ready.")
        else:
            short = diagnosis.shortfalls
            where = f"queue {diagnosis.pool}" if diagnosis.pool else "the cluster"
            if short:
                summary = (
                    f"The job is waiting: {where} does not have enough free "
                    + " and ".join(s.resource for s in short)
                    + " for all its workers at once."
                )
                details.extend(_shortfall(s) for s in short)
                suggestions.append("ask for fewer workers or fewer resources per worker")
            else:
                summary = "The job is waiting for all its workers to be placed together."
            if diagnosis.position is not None:
                details.append(f"It is number {diagnosis.position} in {where}'s queue.")
            details.extend(diagnosis.notes)
            if ahead:
                mine = [j.id for j in ahead if j.user == job.user]
                details.append(_ahead(len(ahead), mine))
                if mine:
                    suggestions.append("cancel one of your own earlier jobs: " + ", ".join(mine[:5]))
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


def _ahead(n: int, mine: Sequence[str]) -> str:
    """`n` jobs are ahead, `mine` of them the caller's: others' jobs are counted, never named."""
    are = "s submitted earlier are" if n != 1 else " submitted earlier is"
    line = f"{n} job{are} still waiting or running"
    if mine:
        shown = ", ".join(mine[:5]) + (", ..." if len(mine) > 5 else "")
        line += f" ({len(mine)} of them yours: {shown})" if n != 1 else f" (yours: {shown})"
    return line + "."


def _shortfall(short: Shortfall) -> str:
    need, free, total = (_amount(short.resource, v) for v in (short.need, short.free, short.total))
    return f"{short.resource}: needs {need}, {free} of {total} free."


def _amount(resource: str, value: float) -> str:
    if resource == "CPUs":
        return format_cpus(value)
    if resource == "memory":
        return format_memory(max(int(value), 0))
    return f"{value:g}"

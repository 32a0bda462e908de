"""Why a job is not running, or why it failed, in plain words. Pure: facts in, sentences out.

Backends report facts (`Diagnosis`); this one module words them, so every
backend explains itself in the same style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spawner.holdings import Short
from spawner.resources import format_cpus, format_memory

from .backends.base import Diagnosis, Shortfall
from .models import Job, JobState


@dataclass(frozen=True)
class QuotaWait:
    """A pending job not yet admitted to its project's quota, as facts: counts, never names.

    `position`: its place in the project's queue (1: the head). `short`: what does
    not fit (its own need, or the head's that blocks it); None when the quota could
    not be read. `workspaces`, `jobs`: how many of each hold some of that resource.
    """

    project: str
    position: int
    short: Short | None = None
    workspaces: int = 0
    jobs: int = 0


def explain(
    job: Job,
    *,
    diagnosis: Diagnosis | None,
    ahead: Sequence[Job],
    failing_lines: Sequence[str],
    quota: QuotaWait | None = None,
) -> dict[str, Any]:
    """Explain `job` from what the backend and the store know.

    `diagnosis`: the backend's facts about a pending job; `ahead`: unfinished jobs
    submitted before this one, by anyone (only the caller's own are named, the
    others are counted); `failing_lines`: the failing worker's last lines;
    `quota`: why it is not yet admitted to its project's quota, if it is not.
    """
    diagnosis = diagnosis or Diagnosis()
    asks = f"{job.workers} worker{'s' if job.workers != 1 else ''} x ({job.resources.describe()})"
    details: list[str] = []
    suggestions: list[str] = []

    if job.state == JobState.PENDING and quota is not None:
        summary = _quota_wait(quota)
        details.append(
            f"Jobs of project {quota.project} start in the order they were submitted, each once the "
            "project's running workspaces and jobs leave room for it in the project's quota."
        )
        if diagnosis.waiting_for:
            details.append(f"The cluster is not ready either: it waits for {diagnosis.waiting_for}.")
        if ahead:
            mine = [j.id for j in ahead if j.user == job.user]
            details.append(_ahead(len(ahead), mine))
        if quota.short is not None:
            suggestions.append(
                f"stop a workspace of project {quota.project} you no longer use, or cancel one of "
                "your own earlier jobs"
            )
        details.insert(0, f"It asks for {asks}.")
    elif job.state == JobState.PENDING and diagnosis.reason:
        summary, more, next_steps = _coded(job, diagnosis)
        details.extend(more)
        suggestions.extend(next_steps)
        details.extend(diagnosis.notes)
        if ahead:
            mine = [j.id for j in ahead if j.user == job.user]
            details.append(_ahead(len(ahead), mine))
            if mine and diagnosis.reason == "WaitingForQuota":
                suggestions.append("cancel one of your own earlier jobs: " + ", ".join(mine[:5]))
        details.insert(0, f"It asks for {asks}.")
    elif job.state == JobState.PENDING:
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
    told: dict[str, Any] = {
        "state": job.state.value,
        "summary": summary,
        "details": details,
        "suggestions": suggestions,
    }
    if job.state == JobState.PENDING:
        told["reason"] = "WaitingForQuota" if quota is not None else diagnosis.reason
        told["position"] = quota.position if quota is not None else diagnosis.position
    return told


def _coded(job: Job, d: Diagnosis) -> tuple[str, list[str], list[str]]:
    """Summary, details and next steps for a wait the backend gave a reason code."""
    pool = d.pool or "default"
    place = f"; {ordinal(d.position)} in the queue" if d.position else ""
    if d.reason == "QueueClosed":
        why = d.waiting_for or f"queue {pool}, which is closed"
        return (
            f"The job is waiting for {why}: no job of it starts until an admin opens it.",
            [],
            [f"ask an admin to open queue {pool} (the Helm chart makes each project's queue)"],
        )
    if d.reason == "WaitingForQuota" and d.shortfalls:
        s = d.shortfalls[0]
        need, total = _amount(s.resource, s.need), _amount(s.resource, s.total)
        used = _amount(s.resource, s.total - s.free)
        by = f" by {d.holders} job{'s' if d.holders != 1 else ''}" if d.holders else ""
        summary = (
            f"The job is waiting for quota: it needs {need} {s.resource} in queue {pool}, whose capability "
            f"is {total}, {used} in use{by}{place}."
        )
        steps = ["wait: it starts when jobs ahead of it in the queue end"]
        per_worker = s.need / max(job.workers, 1)
        if s.free >= per_worker > 0:
            steps.append(f"ask for fewer workers: {int(s.free // per_worker)} would fit in the queue now")
        else:
            steps.append(f"ask for fewer {s.resource} per worker")
        return summary, [_shortfall(x) for x in d.shortfalls[1:]], steps
    if d.reason == "NoNodeFits" and d.shortfalls:
        s = d.shortfalls[0]
        need, free = _amount(s.resource, s.need), _amount(s.resource, s.free)
        summary = (
            f"The job is waiting: no node has {need} free {s.resource} for one worker "
            f"(the most free on any node it may use is {free})."
        )
        steps = [f"ask for at most {free} {s.resource} per worker"] if s.free > 0 else []
        if s.resource == "GPUs":
            steps.append("choose another GPU model, if the template offers one")
        steps.append("or wait for a node to free up")
        return summary, [_shortfall(x) for x in d.shortfalls], steps
    if d.reason == "GangIncomplete":
        gang = d.gang or job.workers
        if d.fits is not None:
            summary = (
                f"The job is waiting for all {gang} of its workers to be placed at once: only {d.fits} fit "
                "on the cluster's nodes now."
            )
            steps = [f"ask for at most {d.fits} workers", "or wait: it starts when enough nodes are free"]
        else:
            summary = f"The job is waiting for all {gang} of its workers to be placed at once."
            steps = ["ask for fewer workers, or wait"]
        return summary, [], steps
    if d.reason == "ImagePull":
        return (
            "The job is waiting: a worker's image cannot be pulled.",
            [],
            ["check the template's image with an admin; cancel the job meanwhile"],
        )
    return f"The job is starting{place}.", [], []


def _quota_wait(wait: QuotaWait) -> str:
    """`The job is waiting for project default's quota: 1 of 1 CPUs held by 1 workspace and 1 job;
    2nd in the project's queue.`"""
    place = f"{ordinal(wait.position)} in the project's queue"
    short = wait.short
    if short is None:
        return (
            f"The job is waiting for project {wait.project}'s quota, which could not be read from the "
            f"hub just now; {place}."
        )
    holders = " and ".join(
        f"{n} {kind}{'s' if n != 1 else ''}"
        for n, kind in ((wait.workspaces, "workspace"), (wait.jobs, "job"))
        if n
    )
    held = f"{short.amount(short.held)} of {short.amount(short.limit)} {short.resource} held"
    by = f" by {holders}" if holders else ""
    return f"The job is waiting for project {wait.project}'s quota: {held}{by}; {place}."


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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

"""A Volcano Job and its pods -> lavahub's states, and which worker failed first.

Pure: the backend hands in the Job and its pods as the API returns them (plain
dicts); nothing here calls the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...models import JobState, Observation
from .render import CONTAINER, worker_of

PENDING = {"Pending", "Inqueue", ""}
RUNNING = {"Running", "Restarting", "Completing", "Terminating", "Aborting"}
ENDED_BADLY = {"Failed", "Aborted", "Terminated"}
TASK_LABEL = "volcano.sh/task-spec"
INDEX_LABEL = "volcano.sh/task-index"


def phase_of(vcjob: Mapping[str, Any]) -> str:
    return str(((vcjob.get("status") or {}).get("state") or {}).get("phase") or "")


def worker_label(framework: str, pod: Mapping[str, Any]) -> tuple[str, int | None]:
    """A pod's log prefix name and rank, from the labels Volcano gives it."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    try:
        index = int(labels.get(INDEX_LABEL, "0"))
    except ValueError:
        index = 0
    worker = worker_of(framework, labels.get(TASK_LABEL, "worker"), index)
    return worker.label, worker.rank


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return (status.get("state") or {}).get("terminated")
    return None


def first_failure(
    framework: str, pods: Iterable[Mapping[str, Any]]
) -> tuple[str, int | None, int | None] | None:
    """(reason, exit code, rank) of the pod that failed first, if one did."""
    failed = []
    for pod in pods:
        status = pod.get("status") or {}
        terminated = _terminated(pod)
        if status.get("phase") != "Failed" and not (terminated and terminated.get("exitCode")):
            continue
        label, rank = worker_label(framework, pod)
        code = terminated.get("exitCode") if terminated else None
        when = (terminated or {}).get("finishedAt") or ""
        if status.get("reason") == "DeadlineExceeded":
            reason = "timeout"
        elif status.get("reason") == "Evicted":
            reason = f"{label.replace('-', ' ')} was evicted: {status.get('message') or 'its node went away'}"
        elif terminated and terminated.get("reason") == "OOMKilled":
            reason = f"{label.replace('-', ' ')} ran out of memory (OOMKilled)"
        elif code is not None:
            reason = f"{label.replace('-', ' ')} exited with code {code}"
        else:
            said = status.get("message") or status.get("reason") or "unknown"
            reason = f"{label.replace('-', ' ')} failed: {said}"
        failed.append((str(when), reason, code, rank))
    if not failed:
        return None
    _, reason, code, rank = min(failed, key=lambda f: f[0])
    return reason, code, rank


def observe(
    framework: str, vcjob: Mapping[str, Any] | None, pods: Iterable[Mapping[str, Any]]
) -> Observation:
    """What lavahub records of a Volcano Job now; a Job that is gone failed (lost)."""
    if vcjob is None:
        return Observation(
            JobState.FAILED, reason="the cluster no longer has this job (deleted outside lavahub)"
        )
    phase = phase_of(vcjob)
    pods = list(pods)
    if phase in PENDING:
        return Observation(JobState.PENDING)
    if phase in RUNNING:
        return Observation(JobState.RUNNING)
    if phase == "Completed":
        return Observation(JobState.SUCCEEDED, exit_code=0)
    failure = first_failure(framework, pods)
    if failure is not None:
        reason, code, rank = failure
        return Observation(JobState.FAILED, reason=reason, exit_code=code, failed_worker=rank)
    state = (vcjob.get("status") or {}).get("state") or {}
    said = state.get("message") or state.get("reason")
    return Observation(
        JobState.FAILED, reason=f"Volcano ended the job ({phase}{': ' + said if said else ''})"
    )

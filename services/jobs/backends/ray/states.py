"""Backend job states -> lavahub's five states. The one place this mapping lives."""

from __future__ import annotations

from typing import Any

from ...models import JobState, Observation


def from_ray(status: str, launcher: dict[str, Any] | None) -> Observation:
    """A Ray job's status plus what our launcher reported in its state file.

    Ray says RUNNING as soon as the launcher runs; the job is only `running` for
    lavahub once the launcher has reserved every worker (the gang is placed).
    """
    launcher = launcher or {}
    exit_code = launcher.get("exit_code")
    reason = launcher.get("reason")
    if status in ("PENDING",):
        return Observation(JobState.PENDING)
    if status == "RUNNING":
        return Observation(JobState.RUNNING if launcher.get("placed") else JobState.PENDING)
    if status == "SUCCEEDED":
        return Observation(JobState.SUCCEEDED, exit_code=0 if exit_code is None else exit_code)
    if status == "STOPPED":
        return Observation(JobState.CANCELLED, reason=reason, exit_code=exit_code)
    # FAILED: our launcher names the failing worker; otherwise the launcher itself died
    return Observation(
        JobState.FAILED,
        reason=reason or "the job's launcher failed",
        exit_code=exit_code,
        failed_worker=launcher.get("failed_worker"),
    )

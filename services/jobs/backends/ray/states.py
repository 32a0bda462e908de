"""The dispatcher's job records -> lavahub's five states. The one place this mapping lives."""

from __future__ import annotations

from typing import Any

from ...models import JobState, Observation

LOST = "lost when the cluster restarted"
STATES = {state.value: state for state in JobState}


def observation(record: dict[str, Any] | None) -> Observation:
    """A job as the dispatcher reports it (`dispatcher.Record`); None: the dispatcher does not know
    it, because the cluster (and so the dispatcher) restarted since it accepted the job."""
    if record is None:
        return Observation(JobState.FAILED, reason=LOST)
    state = STATES.get(record.get("state", ""), JobState.FAILED)
    return Observation(
        state,
        reason=record.get("reason"),
        exit_code=record.get("exit_code"),
        failed_worker=record.get("failed_worker"),
    )

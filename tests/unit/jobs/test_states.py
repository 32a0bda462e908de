import pytest

from services.jobs.backends.ray.dispatcher import ended_worker
from services.jobs.backends.ray.states import LOST, observation
from services.jobs.models import JobState


@pytest.mark.parametrize(
    ("record", "state"),
    [
        ({"state": "pending"}, JobState.PENDING),  # its gang is not placed yet
        ({"state": "running"}, JobState.RUNNING),
        ({"state": "succeeded", "exit_code": 0}, JobState.SUCCEEDED),
        ({"state": "cancelled", "reason": "cancelled"}, JobState.CANCELLED),
        ({"state": "no such state"}, JobState.FAILED),
    ],
)
def test_dispatcher_records_map_to_five_states(record, state):
    assert observation(record).state == state


def test_a_failed_worker_is_named_with_its_exit_code():
    seen = observation(
        {"state": "failed", "exit_code": 3, "failed_worker": 1, "reason": "worker 1 exited with code 3"}
    )
    assert (seen.state, seen.exit_code, seen.failed_worker) == (JobState.FAILED, 3, 1)


def test_a_job_the_dispatcher_does_not_know_was_lost():
    assert (observation(None).state, observation(None).reason) == (JobState.FAILED, LOST)


def test_a_worker_ended_by_a_signal_says_which_as_128_plus_its_number():
    assert ended_worker(0, -9) == (137, "worker 0 was killed by SIGKILL")
    assert ended_worker(2, 3) == (3, "worker 2 exited with code 3")

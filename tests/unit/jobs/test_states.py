import pytest

from services.jobs.backends.ray.states import from_ray
from services.jobs.models import JobState


@pytest.mark.parametrize(
    ("status", "launcher", "state"),
    [
        ("PENDING", None, JobState.PENDING),
        ("RUNNING", None, JobState.PENDING),  # the launcher runs but the gang is not placed yet
        ("RUNNING", {"placed": False}, JobState.PENDING),
        ("RUNNING", {"placed": True}, JobState.RUNNING),
        ("SUCCEEDED", {"placed": True, "exit_code": 0}, JobState.SUCCEEDED),
        ("STOPPED", {"reason": "cancelled"}, JobState.CANCELLED),
        (
            "FAILED",
            {"exit_code": 3, "failed_worker": 1, "reason": "worker 1 exited with code 3"},
            JobState.FAILED,
        ),
    ],
)
def test_ray_states_map_to_five(status, launcher, state):
    assert from_ray(status, launcher).state == state


def test_failures_carry_the_worker_and_exit_code():
    seen = from_ray("FAILED", {"exit_code": 3, "failed_worker": 1, "reason": "worker 1 exited with code 3"})
    assert (seen.exit_code, seen.failed_worker, seen.reason) == (3, 1, "worker 1 exited with code 3")
    assert from_ray("FAILED", None).reason == "the job's launcher failed"

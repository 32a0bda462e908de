"""Faults end cleanly, on every backend: a cluster that crashes mid-job comes back, and its jobs end.

Its own module, so it gets a cluster of its own (the crash does not disturb the other tests).
"""

from __future__ import annotations

import time

from services.jobs.models import JobState

from .conftest import Harness

ENDED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


def test_a_crashed_cluster_comes_back_and_the_jobs_it_lost_end_failed(harness: Harness) -> None:
    code = "import time\nprint('before', flush=True)\ntime.sleep(120)\nprint('after', flush=True)\n"
    job = harness.submit(code)
    harness.wait(job.id, {JobState.RUNNING})
    harness.wait_logs(job.id, lambda lines: "[worker-0] before" in lines)

    killed = harness.kind.crash(harness.backend, harness.loop)
    crashed_at = time.monotonic()
    assert killed, "the test found the cluster's processes to kill"
    waiting = harness.submit("print('after the crash', flush=True)\n")

    lost = harness.wait(job.id, ENDED, timeout=240)
    assert (lost.state, lost.reason) == (JobState.FAILED, harness.kind.lost_reason), lost
    lines = harness.complete_logs(job.id)
    assert "[worker-0] before" in lines, "no line written before the fault is lost"
    assert "[worker-0] after" not in lines

    done = harness.wait(waiting.id, ENDED, timeout=240)
    assert done.state == JobState.SUCCEEDED, done
    assert "[worker-0] after the crash" in harness.complete_logs(waiting.id)
    print(
        f"{harness.name}: killed {killed} cluster processes; the running job ended failed and the next "
        f"succeeded {time.monotonic() - crashed_at:.0f} s after the crash"
    )

"""Warm workers are safe to reuse: nothing of one job reaches the next, cancel and kills end cleanly.

The Ray backend runs every job's workers from Ray worker processes that stay up
between jobs (so a cell starts in milliseconds); these tests hold that fast path
to what a fresh start would give. Volcano starts a pod per worker, so nothing
there is reused and this module is the Ray backend's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from services.jobs.models import JobState
from tests.integration.test_jobs import job_processes

from .conftest import Harness, ray_user, run_harness

ENDED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}

LEAVE = """
import os, subprocess, sys, tempfile
os.environ["LEFT_BY_AN_EARLIER_JOB"] = "yes"
sys.modules["left_by_an_earlier_job"] = sys
with open(os.path.join(tempfile.gettempdir(), "left.txt"), "w") as f:
    f.write("secret of the earlier job")
# a daemon that leaves the cell's session and process group, as a careless cell does
daemon = subprocess.Popen(["sleep", "600"], start_new_session=True)
print("tmp", tempfile.gettempdir(), "daemon", daemon.pid, flush=True)
"""
LOOK = """
import os, sys, tempfile
print("tmp", tempfile.gettempdir(), flush=True)
left = "LEFT_BY_AN_EARLIER_JOB" in os.environ, "left_by_an_earlier_job" in sys.modules
print("env", left[0], "module", left[1], flush=True)
print("tmp files", sorted(os.listdir(tempfile.gettempdir())), flush=True)
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield from run_harness("ray", tmp_path_factory)


def said(lines: list[str], word: str) -> list[str]:
    return next(line.split()[2:] for line in lines if line.startswith(f"[worker-0] {word} "))


def test_a_job_finds_nothing_an_earlier_job_left_on_the_same_workers(harness: Harness) -> None:
    first = harness.submit(LEAVE)
    done = harness.wait(first.id, ENDED)
    lines = harness.complete_logs(first.id)
    assert done.state == JobState.SUCCEEDED, (done, lines)
    tmp, _, daemon = said(lines, "tmp")
    deadline = time.monotonic() + 10
    while psutil.pid_exists(int(daemon)) and psutil.Process(int(daemon)).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"the earlier job's daemon {daemon} still runs after it ended"
        time.sleep(0.1)
    assert not Path(tmp).exists(), "the earlier job's TMPDIR is removed with it"

    second = harness.submit(LOOK)
    done = harness.wait(second.id, ENDED)
    lines = harness.complete_logs(second.id)
    assert done.state == JobState.SUCCEEDED, (done, lines)
    assert said(lines, "tmp") != [tmp], "each job gets a TMPDIR of its own"
    assert "[worker-0] env False module False" in lines, lines
    assert "[worker-0] tmp files []" in lines, lines


def test_another_users_job_finds_nothing_an_earlier_job_left_on_the_same_workers(harness: Harness) -> None:
    first = harness.submit(LEAVE)
    assert harness.wait(first.id, ENDED).state == JobState.SUCCEEDED
    tmp, _, _ = said(harness.complete_logs(first.id), "tmp")
    peek = LOOK + (
        "import os\n"
        f"try:\n    open({tmp + '/left.txt'!r}).read()\n    print('read the earlier file', flush=True)\n"
        "except OSError as e:\n    print('earlier file', type(e).__name__, flush=True)\n"
        "print('uid', os.getuid(), flush=True)\n"
    )
    second = harness.submit(peek, user="bob")
    done = harness.wait(second.id, ENDED)
    lines = harness.complete_logs(second.id)
    assert done.state == JobState.SUCCEEDED, (done, lines)
    assert "[worker-0] env False module False" in lines, lines
    assert "[worker-0] tmp files []" in lines, lines
    assert "[worker-0] read the earlier file" not in lines, lines
    assert f"[worker-0] uid {ray_user('bob')[1]}" in lines, "bob's cell runs as bob"


def test_cancel_during_the_fast_start_leaves_no_worker(harness: Harness) -> None:
    code = "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    for _ in range(3):  # cancelled at once: between submission, placement and the workers' start
        job = harness.submit(code, workers=2)
        deadline = time.monotonic() + 30
        while not harness.job(job.id).submitted:
            assert time.monotonic() < deadline, "the job never reached the backend"
            time.sleep(0.005)
        cancelled = harness.loop.run(harness.supervisor.cancel(harness.job(job.id), by="alice"))
        assert cancelled.state == JobState.CANCELLED
        deadline = time.monotonic() + 15
        while left := job_processes(job.id):
            assert time.monotonic() < deadline, f"{len(left)} workers of the cancelled job still run"
            time.sleep(0.1)
    after = harness.submit("print('after', flush=True)\n", workers=2)
    assert harness.wait(after.id, ENDED).state == JobState.SUCCEEDED, "the workers' bundles came back"


def test_a_worker_killed_from_outside_fails_the_job_naming_it(harness: Harness) -> None:
    code = "import os, time\nprint('up', os.environ['RANK'], flush=True)\ntime.sleep(600)\n"
    job = harness.submit(code, workers=2)
    harness.wait_logs(job.id, lambda lines: {"[worker-0] up 0", "[worker-1] up 1"} <= set(lines))
    [victim] = [p for p in map(psutil.Process, job_processes(job.id)) if p.environ().get("RANK") == "1"]
    victim.kill()
    done = harness.wait(job.id, ENDED)
    assert (done.state, done.failed_worker, done.reason) == (
        JobState.FAILED,
        1,
        "worker 1 was killed by SIGKILL",
    ), done
    assert done.exit_code == 137
    deadline = time.monotonic() + 15
    while job_processes(job.id):
        assert time.monotonic() < deadline, "the other worker was stopped with the gang"
        time.sleep(0.1)

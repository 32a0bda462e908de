"""What every job backend must do, asserted the same way for each (see conftest.BACKENDS).

The figures (jobs run, lines seen) are printed, so a run shows what it covered.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import cloudpickle
import psutil
import pytest

from services.jobs.backends.base import ResultUnavailable
from services.jobs.explain import explain
from services.jobs.logs import TRUNCATED
from services.jobs.models import Job, JobState
from spawner import cgroups
from spawner.resources import Resources

from .conftest import CPUS, LOG_MAX_BYTES, PLATFORM_SECRETS, Harness

ENDED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
CONTRACT = (
    "import os\n"
    "print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'], 'local', os.environ['LOCAL_RANK'],"
    " os.environ['LAVAHUB_JOB_ID'], bool(os.environ['MASTER_ADDR']), int(os.environ['MASTER_PORT']) > 0)\n"
)


def test_the_backend_declares_what_it_runs(harness: Harness) -> None:
    capabilities = harness.backend.capabilities
    assert {"python", "pytorch"} <= set(capabilities.frameworks)
    assert set(capabilities.driver_frameworks) <= set(capabilities.frameworks)


def test_every_worker_runs_the_cell_under_the_contract(harness: Harness) -> None:
    job = harness.submit(CONTRACT, workers=2)
    done = harness.wait(job.id, ENDED)
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0), done
    lines = harness.complete_logs(job.id)
    for rank in (0, 1):
        local = rank if harness.kind.one_machine else 0  # LOCAL_RANK: the rank among a machine's workers
        assert f"[worker-{rank}] rank {rank} of 2 local {local} {job.id} True True" in lines, lines
    states = [state for state, _, _ in harness.store.transitions(job.id)]
    assert states == ["pending", "running", "succeeded"], states
    assert done.started and done.finished and done.started <= done.finished
    print(f"{harness.name}: 2-worker job {job.id} succeeded with {len(lines)} lines")


def test_a_failing_worker_fails_the_gang_with_its_exit_code_and_last_lines(harness: Harness) -> None:
    code = "import os, sys\nif os.environ['RANK'] == '1':\n    print('boom', flush=True)\n    sys.exit(3)\n"
    job = harness.submit(code, workers=2)
    done = harness.wait(job.id, ENDED)
    assert (done.state, done.exit_code, done.failed_worker) == (JobState.FAILED, 3, 1), done
    assert done.reason == "worker 1 exited with code 3"
    lines = harness.complete_logs(job.id)
    assert "[worker-1] boom" in lines
    told = explain(done, diagnosis=None, ahead=[], failing_lines=harness.logs[job.id].tail("[worker-1] ", 10))
    assert told["summary"] == "The job failed: worker 1 exited with code 3."
    assert "[worker-1] boom" in told["details"]


def test_cancel_stops_every_worker_and_is_idempotent(harness: Harness) -> None:
    code = (
        "import os, time\n"
        "while True:\n    print('tick', os.environ['RANK'], flush=True)\n    time.sleep(0.2)\n"
    )
    job = harness.submit(code, workers=2)
    harness.wait(job.id, {JobState.RUNNING})
    harness.wait_logs(job.id, lambda lines: {"[worker-0] tick 0", "[worker-1] tick 1"} <= set(lines))
    cancelled = harness.loop.run(harness.supervisor.cancel(harness.job(job.id), by="alice"))
    assert (cancelled.state, cancelled.reason) == (JobState.CANCELLED, "cancelled by alice")
    harness.loop.run(harness.backend.cancel(harness.job(job.id)))  # again: nothing happens
    lines = harness.complete_logs(job.id)
    time.sleep(2)
    assert harness.lines(job.id) == lines, "no worker writes after the job was cancelled"
    deadline = time.monotonic() + 30
    while (seen := harness.loop.run(harness.backend.status(harness.job(job.id)))).state != JobState.CANCELLED:
        assert time.monotonic() < deadline, f"the cluster still reports {seen}"
        time.sleep(0.5)
    assert harness.job(job.id).state == JobState.CANCELLED, "a cancelled job stays cancelled"


def test_a_job_past_its_timeout_fails_with_reason_timeout(harness: Harness) -> None:
    job = harness.submit("import time\nprint('started', flush=True)\ntime.sleep(300)\n", timeout=3)
    done = harness.wait(job.id, ENDED, timeout=240)
    assert (done.state, done.reason) == (JobState.FAILED, "timeout"), done
    assert "[worker-0] started" in harness.complete_logs(job.id)


def test_exports_reach_every_worker_and_rank_0s_result_comes_back(harness: Harness) -> None:
    exports = cloudpickle.dumps({"x": 41, "words": ["a", "b"]})
    code = "import os\ny = x + 1\nprint('worker', os.environ['RANK'], y, words, flush=True)\n"
    job = harness.submit(code, workers=2, exports=exports, result="y")
    done = harness.wait(job.id, ENDED)
    assert done.state == JobState.SUCCEEDED, done
    lines = harness.complete_logs(job.id)
    assert {"[worker-0] worker 0 42 ['a', 'b']", "[worker-1] worker 1 42 ['a', 'b']"} <= set(lines)
    data = harness.loop.run(harness.backend.result(done))
    assert data is not None and cloudpickle.loads(data) == 42


def test_a_job_that_does_not_fit_now_waits_and_the_backend_says_what_is_short(harness: Harness) -> None:
    hog = harness.submit("import time\nprint('hog', flush=True)\ntime.sleep(300)\n", cpus=CPUS)
    try:
        harness.wait(hog.id, {JobState.RUNNING})
        waiting = harness.submit("print('never yet')\n", cpus=1)
        time.sleep(3)
        assert harness.job(waiting.id).state == JobState.PENDING
        diagnosis = harness.loop.run(harness.backend.diagnose(harness.job(waiting.id)))
        cpus = [s for s in diagnosis.shortfalls if s.resource == "CPUs"]
        assert cpus and (cpus[0].need, cpus[0].free, cpus[0].total) == (1, 0, CPUS), diagnosis
        told = explain(harness.job(waiting.id), diagnosis=diagnosis, ahead=[hog], failing_lines=[])
        assert "free CPUs" in told["summary"], told  # the cluster's or one node's: the backend knows which
        assert f"CPUs: needs 1, 0 of {CPUS} free." in told["details"], told
        harness.loop.run(harness.supervisor.cancel(harness.job(waiting.id), by="alice"))
    finally:
        harness.loop.run(harness.supervisor.cancel(harness.job(hog.id), by="alice"))
    assert harness.wait(waiting.id, ENDED).state == JobState.CANCELLED


def test_a_job_the_cluster_never_saw_is_no_error(harness: Harness) -> None:
    unknown = Job(
        id="0" * 16, name="ghost", user="alice", project="default", template="python", framework="python",
        workers=1, resources=Resources(1, 0, 0), state=JobState.RUNNING, created=datetime.now(UTC),
        timeout=60, job_dir=str(harness.root / "nowhere"), submitted=True,
    )  # fmt: skip
    harness.loop.run(harness.backend.cancel(unknown))
    seen = harness.loop.run(harness.backend.status(unknown))
    assert seen.state == JobState.FAILED and seen.reason
    assert harness.loop.run(harness.backend.logs(unknown, final=True)) == []
    assert harness.loop.run(harness.backend.result(unknown)) is None


def test_a_worker_sees_the_contract_and_nothing_of_the_platform(harness: Harness) -> None:
    code = (
        "import json, os\n"
        "cgroup = open('/proc/self/cgroup').read()\n"
        "print('ENV', json.dumps({**os.environ, 'WORKER_UID': str(os.getuid()), 'CG': cgroup}), flush=True)\n"
    )
    job = harness.submit(code)
    assert harness.wait(job.id, ENDED).state == JobState.SUCCEEDED
    (line,) = [line for line in harness.complete_logs(job.id) if line.startswith("[worker-0] ENV ")]
    env = json.loads(line.removeprefix("[worker-0] ENV "))
    secrets = [*PLATFORM_SECRETS.values(), getattr(harness.backend, "token", None) or "no token"]
    leaked = {key for key, value in env.items() if any(secret in value for secret in secrets)}
    assert not leaked, f"platform secrets reached the job: {leaked}"
    assert not [key for key in env if key.startswith(("JUPYTERHUB_", "RAY_", "JPY_"))], sorted(env)
    home = harness.home()
    user, uid = harness.kind.worker_user()
    assert (env["HOME"], env["USER"], env["LAVAHUB_JOB_ID"]) == (home, user, job.id)
    assert int(env["WORKER_UID"]) == uid
    if harness.kind.cgroups and cgroups.this_machine().get("cpu") is not None:  # held to its bundle
        assert f"/lavahub/job-{job.id}-worker-0" in env["CG"], env["CG"]
    print(f"{harness.name}: a worker's environment has {len(env)} variables: {sorted(env)}")


def test_lavahubs_own_imports_cannot_be_planted_in_the_working_directory(harness: Harness) -> None:
    harness.home()
    home = harness.local_home()
    (home / "cloudpickle.py").write_text("print('PLANTED', flush=True)\nraise SystemExit(7)\n")
    (home / "helpers_of_mine.py").write_text("ANSWER = 42\n")
    try:
        code = "import helpers_of_mine\nprint('answer', helpers_of_mine.ANSWER, flush=True)\n"
        job = harness.submit(code, exports=cloudpickle.dumps({"x": 1}))
        done = harness.wait(job.id, ENDED)
        lines = harness.complete_logs(job.id)
        assert "[worker-0] PLANTED" not in lines
        assert done.state == JobState.SUCCEEDED, (done, lines)
        assert "[worker-0] answer 42" in lines, "the cell still imports modules beside it, as a notebook does"
    finally:
        (home / "cloudpickle.py").unlink()
        (home / "helpers_of_mine.py").unlink()


WEDGE = """
import os, time
job_dir = os.environ["LAVAHUB_JOB_DIR"]
logs = os.path.join(job_dir, "logs")
print("wedging", flush=True)
time.sleep(1)
os.mkdir(os.path.join(logs, "worker-9.log"))
os.mkfifo(os.path.join(logs, "worker-8.log"))
os.symlink("/dev/zero", os.path.join(logs, "worker-7.log"))
# the launcher has logged all it logs before the workers start: its log becomes a FIFO, ours a link
os.rename(os.path.join(logs, "launcher.log"), os.path.join(logs, "launcher.old"))
os.mkfifo(os.path.join(logs, "launcher.log"))
os.rename(os.path.join(logs, "worker-0.log"), os.path.join(logs, "worker-0.old"))
os.symlink("/dev/zero", os.path.join(logs, "worker-0.log"))
with open(os.path.join(job_dir, "state.json.new"), "w") as f:
    f.write("[1]")
os.replace(os.path.join(job_dir, "state.json.new"), os.path.join(job_dir, "state.json"))
os.symlink("/dev/zero", os.path.join(job_dir, "result.pkl"))
time.sleep(3)
"""
FLOOD = """
import sys, time
line = "x" * 65536 + "\\n"
written, end = 0, time.monotonic() + 3
while time.monotonic() < end and written < 96 * 2**20:  # a few seconds, at most 96 MiB of disk
    sys.stdout.write(line)
    written += len(line)
sys.stdout.write("and a last line without a newline")
"""
GOOD = "import time\nfor i in range(100):\n    print('good', i, flush=True)\n    time.sleep(0.03)\n"


def test_wedge_files_and_a_log_flood_leave_another_job_running_to_success(harness: Harness) -> None:
    if not harness.kind.reads_job_dir:
        pytest.skip(
            f"the {harness.name} backend reads no file a job can write (its logs come through an API)"
        )
    service = psutil.Process()
    rss_before = peak = service.memory_info().rss
    wedge, flood = harness.submit(WEDGE), harness.submit(FLOOD)
    harness.wait(flood.id, {JobState.RUNNING})
    good = harness.submit(GOOD)
    deadline = time.monotonic() + 180
    while not all(harness.job(j.id).log_complete for j in (wedge, flood, good)):
        assert time.monotonic() < deadline, [harness.job(j.id) for j in (wedge, flood, good)]
        peak = max(peak, service.memory_info().rss)
        time.sleep(0.1)
    growth = (peak - rss_before) / 2**20

    done = harness.job(good.id)
    assert (done.state, done.exit_code) == (JobState.SUCCEEDED, 0), done
    good_lines = [line for line in harness.lines(good.id) if line.startswith("[worker-0] ")]
    assert good_lines == [f"[worker-0] good {i}" for i in range(100)]

    wedge_lines = harness.lines(wedge.id)
    assert "[worker-0] wedging" in wedge_lines
    said = [line for line in wedge_lines if line.startswith("[lavahub] ")]
    assert sorted(said) == [
        "[lavahub] logs/launcher.log is not read: launcher.log is a FIFO, not a regular file",
        "[lavahub] logs/worker-0.log is not read: worker-0.log is a symbolic link; links are not followed",
    ], wedge_lines  # once each; worker-7, -8 and -9 are no worker of this job, so never opened
    assert harness.job(wedge.id).state.done
    with pytest.raises(ResultUnavailable, match="symbolic link"):
        harness.loop.run(harness.backend.result(harness.job(wedge.id)))

    flood_log = harness.logs[flood.id]
    kept = flood_log.path.stat().st_size
    assert flood_log.truncated and kept <= LOG_MAX_BYTES + 200
    assert harness.job(flood.id).state == JobState.SUCCEEDED
    last = flood_log.read(len(flood_log) - 1)
    assert last == [TRUNCATED.format(limit="4MiB")], last
    first = next(line for line in flood_log.read(0, limit=2**20) if line.startswith("[worker-0] "))
    assert first.endswith("[lavahub] line cut: longer than 65536 bytes") and len(first.encode()) == 65536
    written = sum(p.stat().st_size for p in (Path(flood.job_dir) / "logs").glob("worker-*.log"))
    print(
        f"{harness.name}: 3 jobs; the good one succeeded with {len(good_lines)} lines beside a wedge "
        f"({len(said)} files refused, {len(wedge_lines)} lines) and a flood ({written / 2**20:.0f} MiB "
        f"written, {len(flood_log)} lines and {kept / 2**20:.1f} MiB kept); service RSS grew {growth:.1f} MiB"
    )
    assert growth < 64, f"the service's memory grew {growth:.1f} MiB"


def test_a_log_flood_leaves_another_job_running_to_success(harness: Harness) -> None:
    if harness.kind.reads_job_dir:
        pytest.skip(f"the wedge-and-flood test covers a flood on the {harness.name} backend")
    flood = harness.submit(FLOOD)
    harness.wait(flood.id, {JobState.RUNNING})
    good = harness.submit(GOOD)
    deadline = time.monotonic() + 180
    while not all(harness.job(j.id).log_complete for j in (flood, good)):
        assert time.monotonic() < deadline, [harness.job(j.id) for j in (flood, good)]
        time.sleep(0.1)
    assert harness.job(good.id).state == JobState.SUCCEEDED
    good_lines = [line for line in harness.lines(good.id) if line.startswith("[worker-0] ")]
    assert good_lines == [f"[worker-0] good {i}" for i in range(100)]
    flood_log = harness.logs[flood.id]
    assert harness.job(flood.id).state == JobState.SUCCEEDED
    assert flood_log.truncated and flood_log.path.stat().st_size <= LOG_MAX_BYTES + 200
    assert flood_log.read(len(flood_log) - 1) == [TRUNCATED.format(limit="4MiB")]
    print(f"{harness.name}: beside a flood ({len(flood_log)} lines kept), a job printed all its 100 lines")

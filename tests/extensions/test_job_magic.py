"""The %%job magic and its line magics, in a real kernel, against the real jobs service over real HTTP.

The service runs with a test hub and a scripted cluster (`jobs_service.JobsService`): a test
queues the `Plan` its next job follows, then looks at what the service received and recorded.
"""

from __future__ import annotations

import threading

from services.jobs.backends.base import Diagnosis, Shortfall

from .conftest import PROJECT
from .jobs_service import JobsService
from .kernel import Execution, Kernel
from .scripted_backend import Plan

NO_GPUS_FREE = Diagnosis(pool="default", shortfalls=(Shortfall("GPUs", need=2, free=0, total=2),))


def assert_one_line_error(run: Execution, expected: str) -> str:
    """The cell failed with a single rendered line containing `expected`, and no traceback anywhere."""
    assert run.status == "error", run.everything
    assert len(run.errors) == 1, run.errors
    (line,) = run.errors[0]["traceback"]
    assert expected in line, line
    assert "Traceback" not in run.everything
    assert "File " not in run.everything
    return line


def test_logs_stream_into_the_cell_while_the_job_runs(kernel: Kernel, service: JobsService) -> None:
    lines = [f"[worker-{rank % 2}] step {step}" for step, rank in enumerate(range(5))]
    service.plans.append(Plan(pending=1.2, diagnosis=NO_GPUS_FREE, lines=lines, interval=0.25))

    run = kernel.execute("%%job --workers 2 --gpus 1 --name train\nprint('hello')\n")

    assert run.status == "ok", run.everything
    job = service.last_job()
    out = run.stdout
    for line in lines:
        assert out.count(line + "\n") == 1, out
    # the first line was in the cell before the job ended, not dumped at the end
    assert job.finished_at is not None
    assert run.time_of(lines[0]) < job.finished_at - 0.5
    assert out.index(f"job {job.id} submitted: train, 2 workers") < out.index("pending")
    waiting = "The job is waiting: queue default does not have enough free GPUs for all its workers at once."
    assert out.count(waiting) == 1
    assert out.index("pending") < out.index(" running") < out.index(lines[0])
    assert out.index(lines[-1]) < out.index(" succeeded in ")
    (stream,) = service.recorded("GET", "/logs")  # one stream, from the first line
    assert stream.query == {"follow": "true", "since": "0"}


def test_submission_carries_code_options_and_the_workspace_defaults(
    kernel: Kernel, service: JobsService
) -> None:
    cwd = kernel.execute("import os; print(os.getcwd())").stdout.strip()
    run = kernel.execute(
        "%%job --workers 3 --cpus 1.5 --memory 4Gi --framework pytorch --timeout 60 --template pytorch\n"
        "x = 1\n"
    )

    assert run.status == "ok", run.everything
    (post,) = service.recorded("POST", "api/jobs")
    assert post.headers["Authorization"] == "token test-token"
    assert post.body == {
        "code": "x = 1\n",
        "cwd": cwd,
        "workers": 3,
        "cpus": 1.5,
        "memory": "4Gi",
        "framework": "pytorch",
        "timeout": 60,
        "project": PROJECT,
        "template": "pytorch",
    }


def test_detach_prints_and_returns_the_job_id_at_once(kernel: Kernel, service: JobsService) -> None:
    service.plans.append(Plan(outcome=None))  # would never end

    run = kernel.execute("%%job --detach\nprint('later')\n")

    assert run.status == "ok", run.everything
    job = service.last_job()
    assert f"job {job.id} submitted" in run.stdout
    assert run.results == [repr(job.id)]
    assert not service.recorded("GET", "/logs")
    kernel.execute(f"%job_cancel {job.id}")


def test_a_refused_submission_is_one_line_without_traceback(kernel: Kernel, service: JobsService) -> None:
    run = kernel.execute("%%job --workers 4 --gpus 2\nprint('big')\n")

    line = assert_one_line_error(run, "lavahub: Project 'vision' has a quota of 4 GPUs,")
    assert "this job asks for 8 in all: it could never start." in line
    assert line.endswith("(ask for at most 4 GPUs in all (fewer workers or less per worker))")


def test_bad_arguments_and_unknown_exports_are_one_line(kernel: Kernel, service: JobsService) -> None:
    assert_one_line_error(kernel.execute("%%job --workers two\nx = 1\n"), "lavahub: argument --workers:")
    assert_one_line_error(kernel.execute("%%job --wat\nx = 1\n"), "unrecognized arguments: --wat")
    assert_one_line_error(kernel.execute("%%job --export nope\nx = 1\n"), "cannot export 'nope'")
    assert not service.recorded("POST")


def test_a_missing_or_unreachable_service_is_one_line(kernel: Kernel, service: JobsService) -> None:
    code = (
        "import os; saved = os.environ.pop('LAVAHUB_JOBS_URL')\n"
        "try:\n"
        "    get_ipython().run_cell_magic('job', '', 'x = 1')\n"
        "finally:\n"
        "    os.environ['LAVAHUB_JOBS_URL'] = saved\n"
    )
    line = assert_one_line_error(kernel.execute(code), "lavahub: this is not a lavahub workspace")
    assert line == "lavahub: this is not a lavahub workspace (LAVAHUB_JOBS_URL is not set)"

    code = (
        "import os, socket\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "saved = os.environ['LAVAHUB_JOBS_URL']\n"
        "os.environ['LAVAHUB_JOBS_URL'] = f'http://127.0.0.1:{port}/services/jobs/'\n"
        "try:\n"
        "    get_ipython().run_line_magic('jobs', '')\n"
        "finally:\n"
        "    os.environ['LAVAHUB_JOBS_URL'] = saved\n"
    )
    assert_one_line_error(kernel.execute(code), "lavahub: cannot reach the jobs service at http://127.0.0.1:")


def test_interrupting_the_kernel_cancels_the_job(kernel: Kernel, service: JobsService) -> None:
    service.plans.append(Plan(lines=["[worker-0] started"], outcome=None))  # runs until cancelled
    interrupted = threading.Event()

    def interrupt_once_running(text: str) -> None:
        if "[worker-0] started" in text and not interrupted.is_set():
            interrupted.set()
            kernel.manager.interrupt_kernel()

    run = kernel.execute("%%job\nwhile True: pass\n", on_stream=interrupt_once_running)

    job = service.last_job()
    assert interrupted.is_set()
    assert [r.path for r in service.recorded("DELETE")] == [f"api/jobs/{job.id}"]
    assert job.state == "cancelled"
    assert run.status == "error"
    assert run.errors[0]["ename"] == "KeyboardInterrupt"
    assert run.errors[0]["traceback"] == [f"KeyboardInterrupt: job {job.id} cancelled"]
    assert run.everything.count("cancelled") == 1, run.everything  # said once, not twice
    assert kernel.execute("print('still alive')").stdout == "still alive\n"


def test_export_sends_cloudpickled_notebook_values(kernel: Kernel, service: JobsService) -> None:
    kernel.execute("lr = 0.001\nlayers = [64, 32]\nscale = lambda x: x * 10\n")

    run = kernel.execute("%%job --export lr,layers --export scale\nprint(lr)\n")

    assert run.status == "ok", run.everything
    exports = service.last_job().exports
    assert exports is not None
    assert exports.keys() == {"lr", "layers", "scale"}
    assert exports["lr"] == 0.001
    assert exports["layers"] == [64, 32]
    assert exports["scale"](3) == 30  # a notebook lambda travels by value


def test_result_comes_back_into_the_notebook(kernel: Kernel, service: JobsService) -> None:
    service.plans.append(Plan(lines=["[worker-0] done"], result={"loss": [0.9, 0.4], "epochs": 2}))

    run = kernel.execute("%%job --workers 2 --result metrics\nmetrics = train()\n")

    assert run.status == "ok", run.everything
    assert service.recorded("POST")[0].body["result"] == "metrics"
    assert "result metrics received" in run.stdout
    shown = kernel.execute("print(sorted(metrics.items()))")
    assert shown.stdout == "[('epochs', 2), ('loss', [0.9, 0.4])]\n"


def test_a_missing_result_is_one_line(kernel: Kernel, service: JobsService) -> None:
    run = kernel.execute("%%job --result nothing\npass\n")

    assert_one_line_error(run, "sent back no result 'nothing'")


def test_a_failed_job_names_its_exit_code_and_shows_the_failing_worker(
    kernel: Kernel, service: JobsService
) -> None:
    lines = [
        "[worker-1] loading",
        "[worker-1] Traceback (most recent call last):",
        "[worker-1] ValueError: bad batch",
    ]
    service.plans.append(
        Plan(
            lines=lines, outcome="failed", exit_code=3, reason="worker 1 exited with code 3", failed_worker=1
        )
    )

    run = kernel.execute("%%job --workers 2\nraise ValueError('bad batch')\n")

    job = service.last_job()
    assert run.status == "error"
    assert len(run.errors) == 1
    assert run.errors[0]["traceback"] == [
        f"lavahub: job {job.id} failed with exit code 3 (worker 1 exited with code 3)"
    ]
    # the service's explanation: what failed, then the failing worker's last lines
    assert "The job failed: worker 1 exited with code 3.\n[worker-1] loading" in run.stderr
    assert "[worker-1] ValueError: bad batch" in run.stderr
    assert f"job {job.id[:8]}… failed" in run.stdout


def test_a_timed_out_job_is_stopped_and_says_what_to_change(kernel: Kernel, service: JobsService) -> None:
    service.plans.append(Plan(lines=["[worker-0] working"], outcome=None))  # would never end

    run = kernel.execute("%%job --timeout 1\nwhile True: pass\n")

    job = service.last_job()
    assert run.errors[0]["traceback"] == [f"lavahub: job {job.id} failed (timeout)"]
    assert "The job failed: timeout." in run.stderr
    assert "hint: raise --timeout (it was 1 s) or make the job shorter" in run.stderr
    assert job.script.state == "cancelled", "the cluster was told to stop it"


def test_a_dropped_log_stream_is_resumed_where_it_stopped(kernel: Kernel, service: JobsService) -> None:
    lines = [f"[worker-0] line {n}" for n in range(6)]
    service.plans.append(Plan(lines=lines, interval=0.1))
    service.cut_next_log_stream(after=2)

    run = kernel.execute("%%job\nx = 1\n")

    assert run.status == "ok", run.everything
    for line in lines:
        assert run.stdout.count(line + "\n") == 1, run.stdout
    follows = [r.query for r in service.recorded("GET", "/logs")]
    assert follows[:2] == [{"follow": "true", "since": "0"}, {"follow": "true", "since": "2"}]


def test_jobs_lists_jobs_and_logs_and_cancel_act_on_one(kernel: Kernel, service: JobsService) -> None:
    service.plans.append(Plan(lines=["[worker-0] a", "[worker-0] b"], outcome=None))
    kernel.execute("%%job --detach --name listed\nx = 1\n")
    job = service.last_job()
    service.wait_for(lambda: len(job.logs) == 2)  # running, and both lines are in the service's log

    listing = kernel.execute("%jobs")
    header, first, *_ = listing.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "STATE", "PROJECT", "WORKERS", "CREATED"]
    assert first.split()[:5] == [job.id, "listed", "running", PROJECT, "1"]
    assert len(listing.stdout.splitlines()) == len(service.jobs) + 1

    assert kernel.execute(f"%job_logs {job.id}").stdout == "[worker-0] a\n[worker-0] b\n"

    cancelled = kernel.execute(f"%job_cancel {job.id}")
    assert cancelled.stdout == f"lavahub: job {job.id} cancelled\n"
    assert job.state == "cancelled"

    assert_one_line_error(
        kernel.execute("%job_logs 0123456789abcdef"),
        "lavahub: No job 0123456789abcdef. (GET jobs lists your jobs)",
    )
    assert_one_line_error(
        kernel.execute("%job_logs nosuchjob"),
        "lavahub: 'nosuchjob' is not a job id (a job id is 16 hexadecimal digits; %jobs lists yours)",
    )
    assert_one_line_error(kernel.execute("%job_cancel"), "lavahub: the following arguments are required: id")

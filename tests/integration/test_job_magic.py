"""The acceptance path: %%job in a kernel of a real workspace, against the real hub, service and Ray.

The kernel is started with the environment of alice's running JupyterLab (read
from /proc), exactly what a notebook kernel in that workspace inherits: its
server token, LAVAHUB_JOBS_URL and the kernelspec that loads the magic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from jupyter_client.manager import start_new_kernel

from tests.extensions.kernel import Kernel
from tests.integration.conftest import running_workspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(jobs_platform):
    return jobs_platform


ALL_REDUCE = """%%job --workers 2 --framework pytorch
import torch, torch.distributed as dist
print("hello from", os.environ["RANK"] if (os := __import__("os")) else "", flush=True)
dist.init_process_group("gloo")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print("sum", t.item(), flush=True)
"""


@pytest.fixture(scope="module")
def notebook(platform) -> Iterator[tuple[Kernel, object]]:
    alice = platform.client("alice")
    assert alice.spawn("", {"project": "default", "template": "python"}).status_code in (201, 202)
    alice.wait_ready("")
    _, env = running_workspace("alice")
    with pytest.MonkeyPatch.context() as patch:
        # kernelspecs are looked up in this process: use the workspace's JUPYTER_PATH, as its server does
        patch.setenv("JUPYTER_PATH", env["JUPYTER_PATH"])
        manager, client = start_new_kernel(
            kernel_name="python3", env=env, cwd=env["LAVAHUB_PERSONAL_DIR"], startup_timeout=60
        )
    kernel = Kernel(manager, client)
    yield kernel, alice
    client.stop_channels()
    manager.shutdown_kernel(now=True)
    alice.stop("")


def test_the_workspace_kernel_has_the_magic_loaded(notebook):
    kernel, _ = notebook
    shown = kernel.execute("print('job' in get_ipython().magics_manager.magics['cell'])")
    assert shown.stdout.strip() == "True"


def test_all_reduce_cell_streams_both_workers(notebook):
    kernel, alice = notebook
    run = kernel.execute(ALL_REDUCE, timeout=240)
    assert run.status == "ok", run.everything
    out = run.everything
    assert "[worker-0] sum 3.0" in out and "[worker-1] sum 3.0" in out
    assert run.time_of("[worker-0] hello from 0") < run.time_of("succeeded"), "lines stream before the end"
    job = alice.jobs("GET").json()["jobs"][0]
    assert (job["framework"], job["workers"], job["state"]) == ("pytorch", 2, "succeeded")


def test_asking_for_a_gpu_here_is_refused_in_one_line(notebook):
    kernel, _ = notebook
    run = kernel.execute("%%job --gpus 1 --project vision --template pytorch\nprint('never')\n", timeout=60)
    assert run.status == "error"
    rendered = "\n".join("\n".join(e["traceback"]) for e in run.errors)
    assert rendered == (
        "lavahub: This job asks for 1 GPUs, and the cluster has no GPUs: it could never start. "
        "(ask for fewer GPUs (or none))"
    )


def test_interrupt_cancels_the_job(notebook):
    kernel, alice = notebook
    seen = threading.Event()

    def interrupt_once_running(chunk: str) -> None:
        if "still working" in chunk and not seen.is_set():
            seen.set()
            threading.Timer(0.5, kernel.manager.interrupt_kernel).start()

    run = kernel.execute(
        "%%job\nimport time\nwhile True:\n    print('still working', flush=True)\n    time.sleep(1)\n",
        timeout=180,
        on_stream=interrupt_once_running,
    )
    assert seen.is_set(), run.everything
    assert "cancelled" in run.everything
    job = alice.jobs("GET").json()["jobs"][0]
    deadline = time.monotonic() + 30
    while job["state"] != "cancelled" and time.monotonic() < deadline:
        time.sleep(0.5)
        job = alice.jobs("GET", f"/{job['id']}").json()
    assert job["state"] == "cancelled"


def test_export_and_result_round_trip(notebook):
    kernel, _ = notebook
    kernel.execute("base = 20\ndouble = lambda v: v * 2\n")
    run = kernel.execute(
        "%%job --export base,double --result answer\nanswer = double(base) + 2\n", timeout=180
    )
    assert run.status == "ok", run.everything
    assert kernel.execute("print(answer)").stdout.strip() == "42"

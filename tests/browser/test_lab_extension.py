"""The lab extension in a real JupyterLab, in Chromium, against a real hub, jobs service and Ray.

As a new user would: log in, start a workspace from the spawn form, open a
notebook, run a cell as a 2-worker job from the cell toolbar's button and its
dialog, see both workers' lines in the cell, the job succeeded in the Jobs panel
with a notification, its log in the log viewer; then cancel a long job from the
panel and read why another one waits. Screenshots of the panel, the dialog and
the log viewer are kept in $LAVAHUB_TEST_ARTIFACTS (default .artifacts/browser).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.hub_pages import log_in
from tests.integration.conftest import (  # noqa: F401  (fixtures)
    USER_PASSWORD,
    Platform,
    jobs_platform,
    ray_cluster,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
ARTIFACTS = Path(os.environ.get("LAVAHUB_TEST_ARTIFACTS", REPO / ".artifacts")) / "browser"
RUN = '[data-command="lavahub:run-cell-as-job"]'
CELL = "import os\nprint('hello from rank', os.environ['RANK'], flush=True)\n"
LONG = "import time\nprint('long job started', flush=True)\ntime.sleep(600)\n"


def notebook(*sources: str) -> dict:
    cells: list[dict[str, object]] = [
        {"cell_type": "code", "source": s, "metadata": {}, "outputs": [], "execution_count": None}
        for s in sources
    ]
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": cells,
    }


@pytest.fixture(scope="module")
def platform(jobs_platform: Platform) -> Platform:  # noqa: F811
    return jobs_platform


@pytest.fixture(scope="module")
def lab(platform: Platform, browser) -> Iterator:
    """alice's JupyterLab, after logging in and starting a workspace from the spawn form."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = log_in(browser, platform.url, "alice", USER_PASSWORD, width=1400)
    page.set_default_timeout(60_000)
    page.goto(f"{platform.url}/hub/spawn")
    page.select_option("#lavahub-project", "default")
    page.check("input[value='python']")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/alice/lab**", timeout=120_000)
    page.wait_for_selector(".jp-DirListing-item, .jp-Launcher", timeout=60_000)
    alice = platform.client("alice")
    saved = alice.session.put(
        f"{alice.server_url()}api/contents/jobs.ipynb",
        json={"type": "notebook", "format": "json", "content": notebook(CELL)},
        timeout=30,
    )
    assert saved.status_code in (200, 201), saved.text
    yield page, alice
    for job in alice.jobs("GET").json()["jobs"]:
        if job["state"] in ("pending", "running"):
            alice.jobs("DELETE", f"/{job['id']}")
    page.close()
    alice.stop()


def wait_for_state(alice, job_id: str, states: set[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = alice.jobs("GET", f"/{job_id}").json()
        if job["state"] in states or time.monotonic() > deadline:
            assert job["state"] in states, job
            return job
        time.sleep(0.5)


def open_jobs_panel(page) -> None:
    if not page.is_visible("#lavahub-jobs"):
        page.click("li[data-id='lavahub-jobs']")
    page.wait_for_selector("#lavahub-jobs", state="visible")


def test_the_extension_is_enabled_in_the_platforms_environment(platform: Platform) -> None:
    listed = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter")), "labextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(line for line in (listed.stdout + listed.stderr).splitlines() if "lavahub-jupyter" in line)
    assert "enabled" in line and "OK" in line, line


def test_a_cell_runs_as_a_two_worker_job_from_its_button(lab) -> None:
    page, alice = lab
    page.goto(f"{alice.server_url()}lab/tree/jobs.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    page.click(".jp-Notebook .jp-CodeCell .jp-InputPrompt")
    page.click(f".jp-cell-toolbar {RUN}")
    dialog = page.wait_for_selector(".jp-Dialog .lavahub-RunForm")
    assert page.input_value(".lavahub-RunForm [name=workers]") == "2"
    assert page.input_value(".lavahub-RunForm [name=project]") == "default"
    assert page.input_value(".lavahub-RunForm [name=template]") == "python"
    assert page.get_attribute(".lavahub-RunForm [name=gpus]", "max") == "0"
    page.locator(".jp-Dialog-content").screenshot(path=str(ARTIFACTS / "run-dialog.png"))
    assert dialog is not None
    page.click(".jp-Dialog button.jp-mod-accept")

    output = page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-OutputArea")
    output.get_by_text("[worker-1] hello from rank 1").wait_for(timeout=240_000)
    text = output.inner_text()
    assert "[worker-0] hello from rank 0" in text and "[worker-1] hello from rank 1" in text, text
    job = alice.jobs("GET").json()["jobs"][0]
    assert (job["workers"], job["project"], job["template"]) == (2, "default", "python")
    wait_for_state(alice, job["id"], {"succeeded"})

    open_jobs_panel(page)
    row = page.locator(f".lavahub-JobRow[data-job-id='{job['id']}']")
    row.locator(".lavahub-state-succeeded").wait_for(timeout=30_000)
    page.locator(".Toastify__toast", has_text=f"{job['id']}) succeeded").wait_for(timeout=30_000)
    page.locator("#lavahub-jobs").screenshot(path=str(ARTIFACTS / "jobs-panel.png"))

    row.click()
    page.click(".lavahub-logs")
    viewer = page.locator(f"#lavahub-logs-{job['id']} .lavahub-LogView-lines")
    viewer.get_by_text("[worker-1] hello from rank 1").wait_for()
    page.locator(f"#lavahub-logs-{job['id']} .lavahub-LogView-status").get_by_text("succeeded").wait_for()
    page.screenshot(path=str(ARTIFACTS / "log-viewer.png"))


def test_the_command_is_in_the_context_menu_and_the_palette_and_no_gpu_item_shows(lab) -> None:
    page, _ = lab
    page.click(".lm-DockPanel-tabBar .lm-TabBar-tab:has-text('jobs.ipynb')")  # the log viewer is in front
    page.click(".jp-Notebook .jp-CodeCell .jp-InputPrompt", button="right")
    page.locator(".lm-Menu-itemLabel", has_text="Run Cell as Distributed Job").wait_for()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Shift+C")
    page.fill(".lm-CommandPalette-input", "Distributed Job")
    page.locator(".lm-CommandPalette-itemLabel", has_text="Run Cell as Distributed Job").wait_for()
    page.keyboard.press("Escape")
    # this machine has no GPUs: the status bar shows no GPU item
    assert page.locator(".lavahub-GpuStatus").count() == 0 or not page.is_visible(".lavahub-GpuStatus")


def test_a_long_job_is_cancelled_from_the_panel_and_a_waiting_one_explained(lab) -> None:
    page, alice = lab
    # alice's workspace holds 1 of project default's 3 CPUs; the long job the other 2
    long = alice.jobs("POST", json={"code": LONG, "workers": 2, "project": "default"}).json()
    wait_for_state(alice, long["id"], {"running"})
    waiting = alice.jobs("POST", json={"code": "print(1)\n", "project": "default"}).json()
    assert waiting["state"] == "pending", waiting

    open_jobs_panel(page)
    page.click("#lavahub-jobs .lavahub-refresh")
    page.click(f".lavahub-JobRow[data-job-id='{waiting['id']}']")
    page.click("#lavahub-jobs .lavahub-why")
    told = page.locator("#lavahub-jobs .lavahub-Explanation")
    told.get_by_text("Place in the queue: 1").wait_for()
    assert "quota" in told.inner_text(), told.inner_text()
    page.locator("#lavahub-jobs").screenshot(path=str(ARTIFACTS / "jobs-panel-waiting.png"))

    page.click(f".lavahub-JobRow[data-job-id='{long['id']}']")
    page.click("#lavahub-jobs .lavahub-cancel")
    assert wait_for_state(alice, long["id"], {"cancelled"}, timeout=60)["state"] == "cancelled"
    page.locator(f".lavahub-JobRow[data-job-id='{long['id']}'] .lavahub-state-cancelled").wait_for()
    # with the long job gone the waiting one is admitted and runs
    wait_for_state(alice, waiting["id"], {"running", "succeeded"})
    assert json.dumps(told.inner_text())  # the explanation stays readable text, never raw JSON


def test_the_log_viewer_keeps_every_line_of_a_fast_job(lab) -> None:
    page, alice = lab
    lines = 20_000
    # 20,000 lines in bursts over about 5 s: the viewer is open while they arrive
    code = f"import time\nfor i in range({lines}):\n    print('line', i)\n    i % 1000 or time.sleep(0.25)\n"
    job = alice.jobs("POST", json={"code": code, "project": "default", "name": "chatty"}).json()
    wait_for_state(alice, job["id"], {"running", "succeeded"})
    open_jobs_panel(page)
    page.click("#lavahub-jobs .lavahub-refresh")
    page.dblclick(f".lavahub-JobRow[data-job-id='{job['id']}']")
    view = page.locator(f"#lavahub-logs-{job['id']}")
    view.locator(".lavahub-LogView-status").get_by_text("succeeded").wait_for(timeout=120_000)
    shown = view.locator(".lavahub-LogView-lines").evaluate("node => node.textContent.split('\\n')")
    workers = [line for line in shown if line.startswith("[worker-0] ")]
    assert workers == [f"[worker-0] line {i}" for i in range(lines)]

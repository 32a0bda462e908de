"""The real jobs service on loopback (a test hub, a scripted cluster) and a real IPython kernel
whose environment points at it, started in the user's personal directory as a workspace is."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from jupyter_client.manager import start_new_kernel

from .jobs_service import TOKEN, JobsService, running
from .kernel import Kernel

PROJECT = "vision"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobsService]:
    with running(tmp_path_factory.mktemp("platform")) as started:
        yield started


@pytest.fixture(scope="module")
def kernel(service: JobsService) -> Iterator[Kernel]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in ("http_proxy", "https_proxy", "all_proxy") and not key.startswith("LAVAHUB_")
    }
    env.update(
        LAVAHUB_JOBS_URL=service.url,
        JUPYTERHUB_API_TOKEN=TOKEN,
        LAVAHUB_PROJECT=PROJECT,
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    cwd = service.workspace(PROJECT) / "notebooks"
    cwd.mkdir(parents=True, exist_ok=True)
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd), startup_timeout=60)
    started = Kernel(manager, client)
    loaded = started.execute("%load_ext lavahub_jupyter")
    assert loaded.status == "ok", loaded.everything
    yield started
    client.stop_channels()
    manager.shutdown_kernel(now=True)


@pytest.fixture(autouse=True)
def _fresh_requests(service: JobsService) -> None:
    service.reset()

"""The `%%job` magic, unchanged, on the kubernetes backend.

A real IPython kernel runs in a private mount namespace with alice's personal volume at
/home/jovyan (as her workspace pod has it; as root here, which only lets it make that
mount); the real jobs service (tests/extensions/jobs_service.py: its application, store
and supervisor, a test hub) runs the Volcano backend as the jobs identity with the chart's
RBAC; the tests' Volcano and process kubelet run the pods, whose claims are the same
directories.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel
from kubernetes_asyncio.client import ApiClient, CoreV1Api

from lavahub.config import KubernetesConfig
from lavahub.config.jobs import VolcanoConfig
from services.jobs.backends.volcano.backend import VolcanoBackend
from tests.conftest import passable
from tests.extensions.jobs_service import TOKEN, JobsService
from tests.extensions.kernel import Kernel

from .cluster import KubeCluster, grant_jobs_roles
from .process_kubelet import in_container
from .test_volcano_backend import STORAGE, claims_kubelet
from .volcano import FakeVolcano, install_volcano_crds

pytestmark = pytest.mark.kubernetes

NOTEBOOKS = f"{STORAGE.home_mount}/notebooks"


@pytest.fixture
async def notebook(
    emulated: KubeCluster, admin_api: ApiClient, namespace: str, tmp_path: Path
) -> AsyncIterator[tuple[Kernel, JobsService]]:
    await install_volcano_crds(admin_api)
    await grant_jobs_roles(admin_api, namespace, "jobs")
    root = passable(tmp_path)
    kubelet = claims_kubelet(admin_api, root)
    home = root / "claims" / STORAGE.personal_claim / "users" / "alice"
    (home / "notebooks").mkdir()
    os.chown(home / "notebooks", STORAGE.uid, STORAGE.gid)
    node = f"node-{namespace}"
    await kubelet.register_node(node, capacity={"cpu": "4", "memory": "16Gi", "pods": "110"})
    backend = VolcanoBackend(
        namespace=namespace,
        kubeconfig=str(emulated.kubeconfig("jobs")),
        state_dir=str(root / "service" / "volcano"),
        volcano=VolcanoConfig(ttl_seconds_after_finished=3600),
        settings=KubernetesConfig(),
        storage=STORAGE,
    )
    service = JobsService(root / "service", {"backend": "kubernetes"}, backend)
    service.start()  # on its own thread and loop, where the backend sets up its client
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in ("http_proxy", "https_proxy", "all_proxy") and not key.startswith("LAVAHUB_")
    }
    env.update(LAVAHUB_JOBS_URL=service.url, JUPYTERHUB_API_TOKEN=TOKEN, LAVAHUB_PROJECT="default")
    # started from this (the main) thread: the kernel dies with the thread that made it
    mounts = [(str(home), STORAGE.home_mount, False)]
    manager, client = start_new_kernel(
        kernel_name="python3",
        env=env,
        cwd="/",
        startup_timeout=60,
        preexec_fn=in_container(mounts, None, 0, 0, [], NOTEBOOKS, new_session=False),
    )
    kernel = Kernel(manager, client)
    volcano = FakeVolcano(admin_api, namespace, nodes=[node])
    try:
        async with kubelet.running(namespace, node), volcano.running():
            loaded = await asyncio.to_thread(kernel.execute, "%load_ext lavahub_jupyter")
            assert loaded.status == "ok", loaded.everything
            yield kernel, service
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
        await asyncio.to_thread(service.stop)
        await CoreV1Api(admin_api).delete_node(node)


async def test_a_cell_runs_as_a_volcano_job_through_the_magic_unchanged(
    notebook: tuple[Kernel, JobsService],
) -> None:
    kernel, service = notebook
    cell = (
        "%%job --workers 2 --export x --result y\n"
        "import os\n"
        "rank = int(os.environ['RANK'])\n"
        "print('rank', rank, 'of', os.environ['WORLD_SIZE'], 'in', os.getcwd(), flush=True)\n"
        "open(f'from-{rank}.txt', 'w').write(str(x + rank))\n"
        "y = x * 2\n"
    )
    assert (await asyncio.to_thread(kernel.execute, "x = 20")).status == "ok"
    run = await asyncio.to_thread(kernel.execute, cell, 120)
    assert run.status == "ok", run.everything
    out = run.stdout
    for rank in (0, 1):
        assert f"[worker-{rank}] rank {rank} of 2 in {NOTEBOOKS}\n" in out, out
    job = service.last_job()
    assert job.record.backend_state["queue"] == "default"  # a Volcano Job in the project's queue
    assert out.index(f"job {job.id} submitted") < out.index("[worker-") < out.index(" succeeded in ")
    # rank 0's result is back in the notebook; what the workers wrote is on the volume it shares
    shown = await asyncio.to_thread(
        kernel.execute, "print(y, open('from-0.txt').read(), open('from-1.txt').read())"
    )
    assert shown.stdout == "40 20 21\n", shown.everything

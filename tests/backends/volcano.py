"""The conformance suite's Volcano: a real kube-apiserver with Volcano's CRDs, the tests' Volcano
controller and scheduler, and a kubelet that runs each pod's container as a process.

The backend acts as the jobs service's own identity, bound to exactly the chart's jobs Role
and ClusterRole (`helm/lavahub/files/jobs-*rules.yaml`). One node offers `CPUS` CPUs, as
the Ray head does in the suite, so the same jobs fit and wait on both. Workers run as the
workspaces' uid, with alice's volumes bound at their mount paths from local directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from lavahub.config import KubernetesConfig, KubernetesStorage
from lavahub.config.jobs import VolcanoConfig
from services.jobs.backends.base import Backend
from services.jobs.backends.volcano.backend import VolcanoBackend
from spawner.projects import Project
from spawner.resources import Resources
from spawner.templates import template_from_dict
from spawner.volumes import Volume, kube_volume_plan
from spawner.workspace import WorkspaceRequest
from tests.conftest import passable
from tests.kubernetes.cluster import KubeCluster, apiserver_binary, etcd_binary, grant_jobs_roles
from tests.kubernetes.process_kubelet import ProcessKubelet
from tests.kubernetes.volcano import FakeVolcano, install_volcano_crds
from tests.unavailable import unavailable

# kubernetes_asyncio's stubs type every request body as its model class; its client sends a
# plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

STORAGE = KubernetesStorage()
CPUS = 2  # as conftest.CPUS: the node offers what the Ray head offers
NODE = "node-1"
JOBS_USER = "jobs"
LOST = "the cluster no longer has this job (deleted outside lavahub)"
CLAIMS = (STORAGE.personal_claim, STORAGE.project_claim, STORAGE.global_claim)


@dataclass
class Setup:
    """What one module's Volcano cluster is made of, to stop and to crash it."""

    cluster: KubeCluster
    namespace: str
    root: Path
    admin: ApiClient | None = None
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)


SETUPS: dict[int, Setup] = {}


def claims_root(root: Path) -> Path:
    return root / "claims"


def volumes(root: Path, user: str = "alice") -> tuple[Volume, ...]:
    return kube_volume_plan(user, "default", admin=False, storage=STORAGE)


def local_home(root: Path, user: str = "alice") -> Path:
    """The user's personal directory inside the personal claim, theirs as the init container makes it."""
    home = claims_root(root) / STORAGE.personal_claim / "users" / user
    if not home.exists():
        home.mkdir(parents=True, mode=0o700)
        os.chown(home, STORAGE.uid, STORAGE.gid)
    return home


def worker_user() -> tuple[str, int]:
    return "alice", STORAGE.uid


def request(cpus: float) -> WorkspaceRequest:
    template = template_from_dict({"slug": "python", "image": "python:3.11", "cpus": cpus, "max_cpus": 8})
    return WorkspaceRequest(
        user="alice",
        admin=False,
        project=Project("default", ("alice",)),
        template=template,
        resources=Resources(cpus=cpus, memory=0, gpus=0),
    )


def make(root: Path, loop: Any) -> Backend:
    if apiserver_binary() is None or etcd_binary() is None:
        unavailable("the volcano backend's suite needs kube-apiserver and etcd: run `make kube-apiserver`")
    cluster = KubeCluster(users={JOBS_USER: ["lavahub:jobs"]}, workdir=root / "kube").start()
    setup = Setup(cluster, f"conformance-{uuid.uuid4().hex[:6]}", root)
    for claim in CLAIMS:
        (claims_root(root) / claim).mkdir(parents=True, exist_ok=True)
    passable(claims_root(root))
    loop.run(_start(setup), timeout=180)
    backend = VolcanoBackend(
        namespace=setup.namespace,
        kubeconfig=str(cluster.kubeconfig(JOBS_USER)),
        state_dir=str(root / "volcano"),
        volcano=VolcanoConfig(),
        settings=KubernetesConfig(),
        storage=STORAGE,
    )
    SETUPS[id(backend)] = setup
    return backend


async def _start(setup: Setup) -> None:
    setup.admin = admin = await setup.cluster.api_client()
    await install_volcano_crds(admin)
    await CoreV1Api(admin).create_namespace({"metadata": {"name": setup.namespace}})  # type: ignore[arg-type]
    await grant_jobs_roles(admin, setup.namespace, JOBS_USER)
    claims = {claim: claims_root(setup.root) / claim for claim in CLAIMS}
    kubelet = ProcessKubelet(
        admin,
        claims=claims,
        programs={"python": sys.executable, "sh": "/bin/sh"},
        workdir=setup.root / "kubelet",
    )
    await kubelet.register_node(NODE, capacity={"cpu": str(CPUS), "memory": "16Gi", "pods": "110"})
    await setup.stack.enter_async_context(kubelet.running(setup.namespace, NODE))
    await setup.stack.enter_async_context(FakeVolcano(admin, setup.namespace, nodes=[NODE]).running())


def stop(backend: Backend, loop: Any) -> None:
    setup = SETUPS.pop(id(backend), None)
    if setup is None:
        return
    with contextlib.suppress(Exception):
        loop.run(_stop(setup), timeout=60)
    setup.cluster.stop()
    shutil.rmtree(claims_root(setup.root), ignore_errors=True)


async def _stop(setup: Setup) -> None:
    await setup.stack.aclose()
    if setup.admin is not None:
        await setup.admin.close()


def crash(backend: Backend, loop: Any) -> int:
    """The cluster loses the running jobs: their Volcano Jobs are deleted behind lavahub's back."""
    setup = SETUPS[id(backend)]
    return int(loop.run(_lose_jobs(setup)))


async def _lose_jobs(setup: Setup) -> int:
    assert setup.admin is not None
    custom = CustomObjectsApi(setup.admin)
    jobs = await custom.list_namespaced_custom_object("batch.volcano.sh", "v1alpha1", setup.namespace, "jobs")
    lost = 0
    for vcjob in jobs.get("items", []):
        if ((vcjob.get("status") or {}).get("state") or {}).get("phase") == "Running":
            await custom.delete_namespaced_custom_object(
                "batch.volcano.sh", "v1alpha1", setup.namespace, "jobs", vcjob["metadata"]["name"]
            )
            lost += 1
    await asyncio.sleep(0)
    return lost

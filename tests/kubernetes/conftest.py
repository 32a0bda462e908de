"""A real kube-apiserver for the Kubernetes tests, started once per session.

Without a cached binary the tests skip with the way to build it, except under CI, which must
provide it. LAVAHUB_KUBECONFIG points the tests at a real cluster instead; tests that need
declared users or play the kubelet skip there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from tests.unavailable import unavailable

from .cluster import BUILD_HINT, ExternalCluster, KubeCluster, apiserver_binary, etcd_binary
from .kubelet import FakeKubelet

# kubernetes_asyncio's stubs type every request body as its model class (V1Pod...); its client
# sends a plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

# Users the session's API server knows, with their groups; they have only what RBAC grants.
USERS = {
    "hub": ["lavahub:hub"],
    "jobs": ["lavahub:jobs"],
    "restricted": ["lavahub:restricted"],
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked after_the_kubernetes_tests run last: they read what the others did."""
    last = [item for item in items if item.get_closest_marker("after_the_kubernetes_tests")]
    if last:
        items[:] = [item for item in items if item not in last] + last


@pytest.fixture(scope="session")
def local_apiserver() -> None:
    """Skips (fails under CI) unless kube-apiserver and etcd can run here."""
    if apiserver_binary() is None:
        unavailable(BUILD_HINT)
    if etcd_binary() is None:
        unavailable("etcd not found: run `make kube-apiserver` (it installs Debian's etcd-server)")


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[KubeCluster | ExternalCluster]:
    external = os.environ.get("LAVAHUB_KUBECONFIG")
    if external:
        yield ExternalCluster(Path(external))
        return
    request.getfixturevalue("local_apiserver")
    with KubeCluster(users=USERS) as cluster:
        yield cluster


@pytest.fixture
async def admin_api(kube_cluster: KubeCluster | ExternalCluster) -> AsyncIterator[ApiClient]:
    async with await kube_cluster.api_client() as api:
        yield api


@pytest.fixture
def emulated(kube_cluster: KubeCluster | ExternalCluster) -> KubeCluster:
    """The session's own API server; skips on an external cluster, whose real kubelets run pods."""
    if not isinstance(kube_cluster, KubeCluster):
        pytest.skip("needs the tests' own API server (declared users, fake kubelet), not LAVAHUB_KUBECONFIG")
    return kube_cluster


@pytest.fixture
async def namespace(admin_api: ApiClient) -> AsyncIterator[str]:
    """A fresh namespace per test. Nothing finalizes namespaces on the test server: it stays Terminating."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    core = CoreV1Api(admin_api)
    await core.create_namespace({"metadata": {"name": name, "labels": {"lavahub.test": "true"}}})  # type: ignore[arg-type]
    yield name
    try:
        await core.delete_namespace(name)
    except ApiException as error:
        if error.status != 404:
            raise


@pytest.fixture
def kubelet(emulated: KubeCluster, admin_api: ApiClient) -> FakeKubelet:
    return FakeKubelet(admin_api)


@pytest.fixture
async def node(kubelet: FakeKubelet) -> AsyncIterator[str]:
    """A Ready GPU node of the fake kubelet, removed after the test."""
    name = f"gpu-node-{uuid.uuid4().hex[:8]}"
    await kubelet.register_node(name, labels={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"})
    yield name
    await kubelet.core.delete_node(name)

"""The Kubernetes test infrastructure itself: a real API server, the fake kubelet, RBAC, validation."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import (
    ApiClient,
    ApiextensionsV1Api,
    CoreV1Api,
    CustomObjectsApi,
    RbacAuthorizationV1Api,
    V1Pod,
)
from kubernetes_asyncio.client.exceptions import ApiException

from .cluster import ExternalCluster, KubeCluster, KubeClusterError
from .kubelet import FakeKubelet

# kubernetes_asyncio's stubs type every request body as its model class (V1Pod...); its client
# sends a plain dict as it is, hence `type: ignore[arg-type]` where a call passes one;
# and they type ApiException.body bytes, which the client hands back decoded (str)

pytestmark = pytest.mark.kubernetes


def gpu_pod(name: str, labels: dict[str, str], *, limits: bool = True) -> dict:
    resources = {"requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "2"}}
    if limits:
        resources["limits"] = {"nvidia.com/gpu": "2"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {"name": "notebook", "image": "quay.io/jupyter/base-notebook", "resources": resources}
            ],
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        },
    }


async def wait_for_pod(core: CoreV1Api, namespace: str, name: str, phase: str) -> tuple[V1Pod, list[str]]:
    """Watch the pod (as KubeSpawner's reflector does) until it reaches `phase`; returns it and the events."""
    seen: list[str] = []
    async with watch.Watch().stream(
        core.list_namespaced_pod, namespace, field_selector=f"metadata.name={name}", timeout_seconds=30
    ) as stream:
        async for event in stream:
            pod: V1Pod = event["object"]
            seen.append(f"{event['type']} {pod.status.phase}")
            if pod.status.phase == phase:
                return pod, seen
    raise AssertionError(f"pod {namespace}/{name} never reached {phase}; events: {seen}")


async def test_node_reports_gpus(admin_api: ApiClient, node: str) -> None:
    got = await CoreV1Api(admin_api).read_node(node)
    assert got.status.allocatable["nvidia.com/gpu"] == "8"
    assert [(c.type, c.status) for c in got.status.conditions] == [("Ready", "True")]
    assert {a.type: a.address for a in got.status.addresses}["InternalIP"] == "127.0.0.1"


async def test_fake_kubelet_runs_a_gpu_pod(
    admin_api: ApiClient, kubelet: FakeKubelet, namespace: str, node: str
) -> None:
    core = CoreV1Api(admin_api)
    async with asyncio.timeout(60), kubelet.running(namespace, node, "app=notebook"):
        await core.create_namespaced_pod(namespace, gpu_pod("other", {"app": "other"}))  # type: ignore[arg-type]
        await core.create_namespaced_pod(namespace, gpu_pod("nb", {"app": "notebook"}))  # type: ignore[arg-type]
        pod, events = await wait_for_pod(core, namespace, "nb", "Running")

        assert events[0] == "ADDED Pending"
        assert pod.spec.node_name == node
        assert pod.status.pod_ip == "127.0.0.1"
        assert pod.status.host_ip == "127.0.0.1"
        assert pod.spec.containers[0].resources.limits == {"nvidia.com/gpu": "2"}
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"
        [container] = pod.status.container_statuses
        assert container.ready and container.started and container.state.running
        # the selector leaves other pods to others: still unscheduled
        other = await core.read_namespaced_pod("other", namespace)
        assert other.spec.node_name is None and other.status.phase == "Pending"

        # graceful deletion of a bound pod waits for the kubelet, as KubeSpawner.stop does
        await core.delete_namespaced_pod("nb", namespace)
        for _ in range(100):
            names = [p.metadata.name for p in (await core.list_namespaced_pod(namespace)).items]
            if "nb" not in names:
                break
            await asyncio.sleep(0.1)
        assert names == ["other"]


async def test_before_ready_sees_the_bound_pod_and_picks_its_ip(
    admin_api: ApiClient, kubelet: FakeKubelet, namespace: str, node: str
) -> None:
    """Where a test starts what must answer at podIP:port before the pod turns Ready."""
    seen: list[tuple[str, str | None]] = []

    async def before_ready(pod: V1Pod) -> str:
        seen.append((pod.metadata.name, pod.spec.node_name))
        return "127.0.0.7"

    core = CoreV1Api(admin_api)
    async with asyncio.timeout(30), kubelet.running(namespace, node, "app=a", before_ready=before_ready):
        await core.create_namespaced_pod(namespace, gpu_pod("a", {"app": "a"}))  # type: ignore[arg-type]
        pod, _ = await wait_for_pod(core, namespace, "a", "Running")
    assert seen == [("a", node)]
    assert pod.status.pod_ip == "127.0.0.7"


async def test_run_and_fail_pods_by_hand(
    admin_api: ApiClient, kubelet: FakeKubelet, namespace: str, node: str
) -> None:
    core = CoreV1Api(admin_api)
    await core.create_namespaced_pod(namespace, gpu_pod("a", {"app": "a"}))  # type: ignore[arg-type]
    await core.create_namespaced_pod(namespace, gpu_pod("b", {"app": "b"}))  # type: ignore[arg-type]
    await core.create_namespaced_pod(namespace, gpu_pod("c", {"app": "c"}))  # type: ignore[arg-type]

    running = await kubelet.run_pod(namespace, "a", node, ip="127.0.0.2")
    assert (running.spec.node_name, running.status.phase, running.status.pod_ip) == (
        node,
        "Running",
        "127.0.0.2",
    )

    failed = await kubelet.fail_pod(namespace, "b", node, exit_code=137, reason="OOMKilled")
    assert (failed.status.phase, failed.status.reason) == ("Failed", "OOMKilled")
    assert failed.status.container_statuses[0].state.terminated.exit_code == 137

    waiting = await kubelet.mark_unschedulable(
        namespace, "c", "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    )
    [condition] = waiting.status.conditions
    assert (condition.reason, waiting.spec.node_name) == ("Unschedulable", None)

    with pytest.raises(ValueError, match="bound to"):
        await kubelet.run_pod(namespace, "a", "another-node")


async def test_gpu_request_without_limit_is_rejected(admin_api: ApiClient, namespace: str) -> None:
    with pytest.raises(ApiException) as raised:
        await CoreV1Api(admin_api).create_namespaced_pod(namespace, gpu_pod("nb", {}, limits=False))  # type: ignore[arg-type]
    assert raised.value.status == 422
    # 1.20 names the field, not the resource
    assert "spec.containers[0].resources.limits" in raised.value.body  # type: ignore[operator]
    assert "Limit must be set for non overcommitable resources" in raised.value.body  # type: ignore[operator]


async def test_custom_resources_are_validated(
    emulated: KubeCluster, admin_api: ApiClient, namespace: str
) -> None:
    """The first custom-resource create is where reflect2 v1.0.1 crashed the server (build-apiserver)."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "required": ["minAvailable"],
                "properties": {
                    "minAvailable": {"type": "integer", "minimum": 1},
                    "queue": {"type": "string"},
                },
            }
        },
    }
    group, plural = "tests.lavahub.io", "gangs"
    await ApiextensionsV1Api(admin_api).create_custom_resource_definition(
        {  # type: ignore[arg-type]
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": "gang", "kind": "Gang"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": schema},
                        "subresources": {"status": {}},
                    }
                ],
            },
        }
    )
    custom = CustomObjectsApi(admin_api)

    def gang(name: str, min_available: object) -> dict:
        return {
            "apiVersion": f"{group}/v1",
            "kind": "Gang",
            "metadata": {"name": name},
            "spec": {"minAvailable": min_available},
        }

    for _ in range(100):  # served once the CRD is Established, a moment after creation
        try:
            await custom.create_namespaced_custom_object(group, "v1", namespace, plural, gang("ok", 2))
            break
        except ApiException as error:
            assert error.status == 404
            await asyncio.sleep(0.1)
    with pytest.raises(ApiException) as raised:
        await custom.create_namespaced_custom_object(group, "v1", namespace, plural, gang("bad", "two"))
    assert raised.value.status == 422
    assert "spec.minAvailable in body must be of type integer" in raised.value.body  # type: ignore[operator]
    [listed] = (await custom.list_namespaced_custom_object(group, "v1", namespace, plural))["items"]
    assert listed["spec"] == {"minAvailable": 2}


async def test_restricted_user_needs_a_role_binding(
    emulated: KubeCluster, admin_api: ApiClient, namespace: str
) -> None:
    async with await emulated.api_client("restricted") as restricted:
        with pytest.raises(ApiException) as raised:
            await CoreV1Api(restricted).list_namespaced_pod(namespace)
        assert raised.value.status == 403

        rbac = RbacAuthorizationV1Api(admin_api)
        await rbac.create_namespaced_role(
            namespace,
            {  # type: ignore[arg-type]
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            },
        )
        await rbac.create_namespaced_role_binding(
            namespace,
            {  # type: ignore[arg-type]
                "metadata": {"name": "restricted-reads-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "lavahub:restricted"}
                ],
            },
        )
        for _ in range(50):  # the authorizer reads RBAC objects from a cache: a moment behind
            try:
                pods = await CoreV1Api(restricted).list_namespaced_pod(namespace)
                break
            except ApiException as error:
                assert error.status == 403
                await asyncio.sleep(0.1)
        assert pods.items == []

        with pytest.raises(ApiException) as raised:  # still nothing cluster-wide, nothing written
            await CoreV1Api(restricted).create_namespaced_pod(namespace, gpu_pod("nb", {}))  # type: ignore[arg-type]
        assert raised.value.status == 403


def test_kubeconfig_names_the_user(kube_cluster: KubeCluster | ExternalCluster) -> None:
    if isinstance(kube_cluster, ExternalCluster):
        pytest.skip("the external kubeconfig is the environment's")
    config = kube_cluster.kubeconfig("hub").read_text()
    assert kube_cluster.server in config
    assert kube_cluster.token("hub") in config
    assert kube_cluster.admin_token not in config


def test_startup_failure_shows_the_log(tmp_path: Path) -> None:
    etcd = tmp_path / "etcd"
    etcd.write_text("#!/bin/sh\necho 'etcd: no space left on the imaginary device' >&2\nexit 3\n")
    etcd.chmod(0o755)
    cluster = KubeCluster(binary=Path("/bin/true"), etcd=etcd, workdir=tmp_path / "cluster")
    with pytest.raises(KubeClusterError, match=r"(?s)etcd exited with status 3.*imaginary device"):
        cluster.start()


@pytest.mark.usefixtures("local_apiserver")
def test_stop_leaves_no_process(tmp_path: Path) -> None:
    with KubeCluster(workdir=tmp_path) as cluster:
        pids = [str(p.pid) for p in cluster._processes]
        assert len(pids) == 2
    alive = subprocess.run(["ps", "-o", "pid=,comm=", "-p", ",".join(pids)], capture_output=True, text=True)
    assert alive.stdout.strip() == ""

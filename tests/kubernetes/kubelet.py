"""The tests' stand-in for the scheduler and the kubelet, through the real API.

No container runtime exists on the test machines, so nothing would ever bind or run a pod.
FakeKubelet does what those components do, through the same API calls they make (Node status,
the pod binding subresource, the pod status subresource, final deletion), so code under test,
such as KubeSpawner and its reflectors, sees what it would see on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient, CoreV1Api, V1Pod
from kubernetes_asyncio.client.exceptions import ApiException

# kubernetes_asyncio's stubs type every request body as its model class (V1Pod...); its client
# sends a plain dict as it is, hence `type: ignore[arg-type]` where a call passes one,
# and where `_preload_content=False` answers the raw response instead

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": "8", "pods": "110"}
KUBELET_VERSION = "v1.20.2"

# Called with the bound pod before it is reported Running; returns the pod IP to report (or None
# for the kubelet's default). This is where a test starts whatever must answer at podIP:port.
BeforeReady = Callable[[V1Pod], Awaitable[str | None]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKubelet:
    """Registers Nodes and moves pods through their lifecycle on them.

    `api` is a kubernetes_asyncio ApiClient with node and pod-status rights (the admin's).
    """

    def __init__(self, api: ApiClient, *, pod_ip: str = "127.0.0.1", kubelet_port: int = 10250) -> None:
        self.core = CoreV1Api(api)
        self.pod_ip = pod_ip
        self.kubelet_port = kubelet_port

    # --- nodes -----------------------------------------------------------------------------------

    async def register_node(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        capacity: Mapping[str, str] | None = None,
        taints: Sequence[Mapping[str, Any]] = (),
        ready: bool = True,
    ) -> dict[str, Any]:
        """Create Node `name` and report it Ready with `capacity` (also allocatable) at 127.0.0.1."""
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    **(labels or {}),
                },
            },
            "spec": {"taints": [dict(t) for t in taints]},
        }
        await self.core.create_node(body)  # type: ignore[arg-type]
        return await self.set_node_status(name, capacity=capacity, ready=ready)

    async def set_node_status(
        self, name: str, *, capacity: Mapping[str, str] | None = None, ready: bool = True
    ) -> dict[str, Any]:
        """Write the Node's status as a kubelet does: through the status subresource."""
        resources = dict(DEFAULT_CAPACITY if capacity is None else capacity)
        now = _now()
        status = {
            "capacity": resources,
            "allocatable": resources,
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "reason": "KubeletReady" if ready else "KubeletNotReady",
                    "message": "fake kubelet of the lavahub tests",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
            "nodeInfo": {
                "machineID": name,
                "systemUUID": name,
                "bootID": name,
                "kernelVersion": "fake",
                "osImage": "fake",
                "containerRuntimeVersion": "fake://0",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        node = await self.core.patch_node_status(name, {"status": status})
        return node.to_dict()

    # --- pods ------------------------------------------------------------------------------------

    async def bind_pod(self, namespace: str, name: str, node: str) -> None:
        """Schedule the pod onto `node` as the scheduler does: the binding subresource.

        spec.nodeName cannot be changed after creation, so this is the only way. The response is a
        Status, which the generated client fails to read as a V1Binding: leave it unparsed.
        """
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        response = await self.core.create_namespaced_pod_binding(
            name,
            namespace,
            body,  # type: ignore[arg-type]
            _preload_content=False,
        )
        response.release()  # type: ignore[attr-defined]

    async def run_pod(self, namespace: str, name: str, node: str, *, ip: str | None = None) -> V1Pod:
        """Bind the pod to `node` if unbound, then report it Running and Ready with pod IP `ip`."""
        pod = await self._bound(namespace, name, node)
        now = _now()
        start = pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if pod.status.start_time else now
        ip = ip or self.pod_ip
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": start,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "initContainerStatuses": [
                self._container_status(pod, c, ready=True, state={"terminated": self._exited(0, now)})
                for c in pod.spec.init_containers or []
            ],
            "containerStatuses": [
                self._container_status(pod, c, ready=True, state={"running": {"startedAt": now}})
                for c in pod.spec.containers
            ],
        }
        return await self.core.patch_namespaced_pod_status(name, namespace, {"status": status})

    async def fail_pod(
        self,
        namespace: str,
        name: str,
        node: str | None = None,
        *,
        exit_code: int = 1,
        reason: str = "Error",
        message: str = "",
    ) -> V1Pod:
        """Report the pod Failed, its containers exited with `exit_code` (bound to `node` first if given)."""
        pod = (
            await self._bound(namespace, name, node)
            if node
            else await self.core.read_namespaced_pod(name, namespace)
        )
        now = _now()
        terminated = {**self._exited(exit_code, now), "reason": reason, "message": message}
        status = {
            "phase": "Failed",
            "reason": reason,
            "message": message,
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "PodFailed", "lastTransitionTime": now},
                {
                    "type": "ContainersReady",
                    "status": "False",
                    "reason": "PodFailed",
                    "lastTransitionTime": now,
                },
            ],
            "containerStatuses": [
                self._container_status(pod, c, ready=False, state={"terminated": terminated})
                for c in pod.spec.containers
            ],
        }
        return await self.core.patch_namespaced_pod_status(name, namespace, {"status": status})

    async def mark_unschedulable(self, namespace: str, name: str, message: str) -> V1Pod:
        """Leave the pod Pending with the scheduler's Unschedulable condition and `message`."""
        status = {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastTransitionTime": _now(),
                }
            ],
        }
        return await self.core.patch_namespaced_pod_status(name, namespace, {"status": status})

    async def finish_deletion(self, namespace: str, name: str, uid: str | None = None) -> None:
        """Remove a terminating pod, as the kubelet does once its containers stopped.

        A bound pod deleted with a grace period only gets a deletionTimestamp; it disappears when
        the kubelet deletes it again with grace period 0, which is what KubeSpawner.stop waits for.
        """
        preconditions = {"uid": uid} if uid else None
        with contextlib.suppress(ApiException):  # already gone
            await self.core.delete_namespaced_pod(
                name,
                namespace,
                body={"gracePeriodSeconds": 0, "preconditions": preconditions},  # type: ignore[arg-type]
            )

    # --- the loop --------------------------------------------------------------------------------

    async def auto_run(
        self,
        namespace: str,
        node: str,
        label_selector: str | None = None,
        *,
        before_ready: BeforeReady | None = None,
    ) -> None:
        """Run every matching pod as it appears and remove it when deleted; returns only when cancelled.

        Pods with spec.nodeName set to another node, or already finished, are left alone.
        """
        kwargs: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        handled: set[str] = set()
        while True:
            listing = await self.core.list_namespaced_pod(namespace, **kwargs)
            for pod in listing.items:
                await self._handle(pod, node, handled, before_ready)
            stream = watch.Watch().stream(
                self.core.list_namespaced_pod,
                namespace,
                resource_version=listing.metadata.resource_version,
                timeout_seconds=300,
                **kwargs,
            )
            try:
                async with stream:
                    async for event in stream:
                        if event["type"] in ("ADDED", "MODIFIED"):
                            await self._handle(event["object"], node, handled, before_ready)
            except ApiException as error:
                if error.status != 410:  # resourceVersion too old: list again
                    raise

    @contextlib.asynccontextmanager
    async def running(
        self,
        namespace: str,
        node: str,
        label_selector: str | None = None,
        *,
        before_ready: BeforeReady | None = None,
    ) -> AsyncIterator[asyncio.Task[None]]:
        """`auto_run` in a background task for the duration of the block; its errors surface at exit."""
        task = asyncio.create_task(self._auto_run_logged(namespace, node, label_selector, before_ready))
        try:
            yield task
        finally:
            if task.done():
                task.result()  # raise what stopped the loop early
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _auto_run_logged(
        self, namespace: str, node: str, label_selector: str | None, before_ready: BeforeReady | None
    ) -> None:
        """auto_run, logging why it stopped: a test waiting for a pod otherwise only sees a timeout."""
        try:
            await self.auto_run(namespace, node, label_selector, before_ready=before_ready)
        except Exception:
            log.exception("fake kubelet for namespace %s, node %s stopped", namespace, node)
            raise

    async def _handle(
        self, pod: V1Pod, node: str, handled: set[str], before_ready: BeforeReady | None
    ) -> None:
        meta, spec = pod.metadata, pod.spec
        if spec.node_name not in (None, node):
            return
        if meta.deletion_timestamp is not None:
            if spec.node_name == node:
                await self.finish_deletion(meta.namespace, meta.name, meta.uid)
            return
        if meta.uid in handled or (pod.status and pod.status.phase in ("Running", "Succeeded", "Failed")):
            return
        handled.add(meta.uid)
        ip = None
        if before_ready is not None:
            ip = await before_ready(await self._bound(meta.namespace, meta.name, node))
        await self.run_pod(meta.namespace, meta.name, node, ip=ip)

    async def _bound(self, namespace: str, name: str, node: str) -> V1Pod:
        pod = await self.core.read_namespaced_pod(name, namespace)
        if pod.spec.node_name is None:
            await self.bind_pod(namespace, name, node)
            pod = await self.core.read_namespaced_pod(name, namespace)
        elif pod.spec.node_name != node:
            raise ValueError(f"pod {namespace}/{name} is bound to {pod.spec.node_name}, not {node}")
        return pod

    @staticmethod
    def _container_status(
        pod: V1Pod, container: Any, *, ready: bool, state: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "name": container.name,
            "image": container.image,
            "imageID": f"fake://{container.image}",
            "containerID": f"fake://{pod.metadata.uid}/{container.name}",
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    @staticmethod
    def _exited(exit_code: int, now: str) -> dict[str, Any]:
        return {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": now,
            "finishedAt": now,
        }

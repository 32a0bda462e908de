"""A real hub with the Kubernetes backend: spawn form, REST API, pods on a real API server.

`lavahub up` runs JupyterHub and its proxy with `backend: kubernetes` against the test
API server, as the hub's restricted identity. The fake kubelet runs each pod by starting
what its container would run, `jupyterhub-singleuser` with the pod's environment, on its
own loopback address (127.0.0.N:8888 stands for the pod IP), so the hub sees a workspace
come up through the proxy exactly as on a cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import CoreV1Api, V1Pod

from spawner.base import template_store
from tests.integration.conftest import PLATFORM, start_platform

from .cluster import grant_hub_role
from .kubelet import FakeKubelet

# kubernetes_asyncio's stubs type every request body as its model class (V1Pod...); its client
# sends a plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

pytestmark = [pytest.mark.kubernetes, pytest.mark.integration]

SINGLEUSER = str(Path(sys.executable).with_name("jupyterhub-singleuser"))


class PodProcesses:
    """What the fake kubelet runs for each pod: its notebook server as a local process."""

    def __init__(self, root: Path):
        self.root = root
        self.addresses = (f"127.0.0.{n}" for n in itertools.count(2))
        self.processes: list[subprocess.Popen[bytes]] = []

    async def start(self, pod: V1Pod) -> str:
        ip = next(self.addresses)
        (container,) = pod.spec.containers
        env = {e.name: e.value or "" for e in container.env or []}
        home = self.root / pod.metadata.name
        home.mkdir(parents=True, exist_ok=True)
        env.update(
            JUPYTERHUB_SERVICE_URL=f"http://{ip}:8888/",
            HOME=str(home),
            PATH=os.environ["PATH"],
            JUPYTER_CONFIG_DIR=str(home / ".jupyter"),
        )
        assert container.args == ["jupyterhub-singleuser"], container.args
        log = (self.root / f"{pod.metadata.name}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [SINGLEUSER, "--allow-root", f"--ip={ip}", "--port=8888", f"--ServerApp.root_dir={home}"],
                env=env,
                cwd=home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return ip

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


class KubeletThread:
    """The fake kubelet's loop on its own event loop, beside the synchronous hub client."""

    def __init__(self, cluster: Any, namespace: str, pods: PodProcesses):
        self.cluster, self.namespace, self.pods = cluster, namespace, pods
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),), daemon=True)
        self.errors: list[BaseException] = []

    async def _run(self) -> None:
        self._stop = asyncio.Event()
        try:
            async with await self.cluster.api_client() as admin:
                core = CoreV1Api(admin)
                await core.create_namespace({"metadata": {"name": self.namespace}})  # type: ignore[arg-type]
                await grant_hub_role(admin, self.namespace)
                kubelet = FakeKubelet(admin)
                node = f"node-{self.namespace}"
                await kubelet.register_node(node)
                async with kubelet.running(
                    self.namespace, node, "component=singleuser-server", before_ready=self.pods.start
                ):
                    self.ready.set()
                    await self._stop.wait()
                await core.delete_node(node)
        except BaseException as error:  # surfaced by the test, not lost in the thread
            self.errors.append(error)
            self.ready.set()

    def __enter__(self) -> KubeletThread:
        self.thread.start()
        assert self.ready.wait(60) and not self.errors, self.errors
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
        self.pods.stop()
        assert not self.errors, self.errors


@pytest.fixture
def kube_platform(emulated, tmp_path) -> Iterator[Any]:
    namespace = f"hub-{os.urandom(4).hex()}"
    pods = PodProcesses(Path(tempfile.mkdtemp(prefix="lavahub-pods-")))
    config = {
        **PLATFORM,
        "backend": "kubernetes",
        "kubernetes": {"namespace": namespace},
        "start_timeout": 90,
        "auth": {"type": "local"},  # shared passwords are refused on kubernetes; client() knows these
    }
    env = {"KUBECONFIG": str(emulated.kubeconfig("hub")), "LAVAHUB_HUB_SERVICE": "127.0.0.1"}
    with KubeletThread(emulated, namespace, pods):
        platform: Any = start_platform(tmp_path / "hub", config, env_extra=env)  # gets two attributes more
        platform.namespace, platform.cluster = namespace, emulated
        try:
            yield platform
        finally:
            platform.stop()


def test_a_user_starts_a_workspace_pod_from_the_form_and_an_admins_change_shows_at_once(kube_platform):
    alice = kube_platform.client("alice")
    form = alice.page("hub/spawn").text
    assert 'value="python"' in form and 'value="pytorch"' in form and 'value="retired"' not in form

    # a template added to the store appears at the next form load, with no restart
    store = template_store(f"sqlite:///{kube_platform.data_dir / 'lavahub.sqlite'}")
    python = store.get("python")
    assert python is not None
    store.put(replace(python, slug="fresh", display_name="Fresh"), author="admin")
    assert 'value="fresh"' in alice.page("hub/spawn").text

    response = alice.submit_form("hub/spawn", {"project": "default", "template": "fresh", "cpus": "2"})
    assert response.status_code in (200, 302), response.text[-500:]
    alice.wait_ready(timeout=120)
    status = alice.session.get(f"{alice.server_url()}api/contents", timeout=10)
    assert status.status_code == 200, "JupyterLab in the pod answers through the proxy"

    async def pods() -> list[dict[str, Any]]:
        async with await kube_platform.cluster.api_client() as api:
            found = await CoreV1Api(api).list_namespaced_pod(
                kube_platform.namespace, label_selector="component=singleuser-server"
            )
            return [api.sanitize_for_serialization(p) for p in found.items]

    (started,) = asyncio.run(pods())
    assert started["metadata"]["labels"]["lavahub.io/template"] == "fresh"
    assert started["metadata"]["labels"]["lavahub.io/project"] == "default"
    limits = started["spec"]["containers"][0]["resources"]["limits"]
    assert limits["cpu"] in (2, "2", 2.0)

    # the project's quota (3 CPUs) counts the running pod: a second workspace asking for 2 is refused
    refused = alice.spawn("second", {"project": "default", "template": "python", "cpus": 2})
    assert refused.status_code == 400
    assert "Project 'default' has a quota of 3 CPUs; 2 are in use (alice 2)" in refused.json()["message"]

    alice.stop()
    assert asyncio.run(pods()) == []

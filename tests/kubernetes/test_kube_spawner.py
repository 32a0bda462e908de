"""The lavahub KubeSpawner against a real API server, acting as the hub's own restricted identity.

The hub identity has exactly the Role rules the chart grants (helm/lavahub/files/
hub-role-rules.yaml); the fake kubelet runs the pods it creates. KubeSpawner's real
client, reflectors and pod manifests are used throughout; nothing is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from tornado import web

from lavahub.config import KubernetesConfig, KubernetesStorage
from spawner.base import template_store
from spawner.projects import Project
from spawner.resources import Quota
from spawner.store import TemplateStore
from spawner.templates import template_from_dict

from . import SPAWNER_KUBECONFIG
from .cluster import grant_hub_role
from .kubelet import FakeKubelet

# kubernetes_asyncio's stubs type every request body as its model class (V1Pod...); its client
# sends a plain dict as it is, hence `type: ignore[arg-type]` where a call passes one;
# `jupyterhub_message` is JupyterHub's attribute on tornado's HTTPError, unknown to tornado's types

pytestmark = pytest.mark.kubernetes

SELECTOR = "component=singleuser-server"
TEMPLATES = [
    {"slug": "python", "image": "quay.io/jupyter/scipy-notebook:2025-01-06", "max_cpus": 2},
    {"slug": "pytorch", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06", "gpus": 1,
     "max_gpus": 4, "gpu_types": ["NVIDIA-A100-SXM4-80GB"], "projects": ["vision"]},
    {"slug": "mig", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06", "gpus": 1,
     "max_gpus": 1, "gpu_resource": "nvidia.com/mig-1g.10gb", "projects": ["vision"]},
]  # fmt: skip


@pytest.fixture
async def hub_identity(emulated, admin_api: ApiClient, namespace: str) -> str:
    """The chart's Role and RoleBinding for the hub user, and its kubeconfig where KubeSpawner reads it."""
    await grant_hub_role(admin_api, namespace)
    SPAWNER_KUBECONFIG.parent.mkdir(parents=True, exist_ok=True)
    SPAWNER_KUBECONFIG.write_text(emulated.kubeconfig("hub").read_text())
    return namespace


@pytest.fixture
def store(tmp_path) -> TemplateStore:
    store = template_store(f"sqlite:///{tmp_path / 'lavahub.sqlite'}")  # the one the spawners use
    store.seed([template_from_dict(t) for t in TEMPLATES])
    return store


@pytest.fixture
async def gpu_node(kubelet: FakeKubelet, hub_identity: str) -> AsyncIterator[str]:
    async with kubelet.running(hub_identity, "gpu-node", SELECTOR):
        yield hub_identity


class Spawners:
    """Spawners as the hub makes them: one per (user, server name), projects from the user's groups."""

    def __init__(self, namespace: str, store: TemplateStore):
        self.namespace, self.store = namespace, store
        self.projects = {
            "vision": Project("vision", ("alice",), quota=Quota(gpus=3)),
            "default": Project("default", ("alice", "bob")),
        }
        self.made: list[Any] = []

    def groups_of(self, user: str) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(name=p.name, properties=p.to_properties(),
                            users=[SimpleNamespace(name=m) for m in p.members])
            for p in self.projects.values()
            if user in p.members
        ]  # fmt: skip

    def __call__(self, user: str, options: dict[str, Any], *, server: str = "", admin: bool = False) -> Any:
        from spawner.kube import KubeWorkspaceSpawner

        hub_user = SimpleNamespace(
            name=user, id=len(self.made) + 1, url=f"/user/{user}/", admin=admin, groups=self.groups_of(user)
        )
        spawner = KubeWorkspaceSpawner(
            _mock=True,
            user=hub_user,
            orm_spawner=SimpleNamespace(name=server, server=None),
            database_url=self.store.engine.url.render_as_string(hide_password=False),
            storage=KubernetesStorage(),
            settings=KubernetesConfig(namespace=self.namespace),
        )
        spawner.user_options = options
        spawner.api_token = "test-token"
        self.made.append(spawner)
        return spawner

    async def stop_all(self) -> None:
        """Stop every workspace and the reflectors: the next test has its own namespace and loop."""
        for spawner in self.made:
            with contextlib.suppress(Exception):
                await spawner.stop(now=True)
        reflectors = type(self.made[0]).reflectors
        for reflector in list(reflectors.values()):
            with contextlib.suppress(Exception):
                await reflector.stop()
        reflectors.clear()


@pytest.fixture
async def spawners(gpu_node: str, store: TemplateStore) -> AsyncIterator[Spawners]:
    made = Spawners(gpu_node, store)
    yield made
    if made.made:
        await made.stop_all()


async def pod_of(admin_api: ApiClient, spawner: Any) -> dict[str, Any]:
    """The pod as the API server stored it, checked against current Kubernetes schemas too."""
    pod = await CoreV1Api(admin_api).read_namespaced_pod(spawner.pod_name, spawner.namespace)
    manifest = admin_api.sanitize_for_serialization(pod)
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=False)
    return manifest


async def test_a_gpu_workspace_starts_through_the_hubs_own_rbac(spawners, admin_api):
    spawner = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 2,
                                 "gpu_type": "NVIDIA-A100-SXM4-80GB"})  # fmt: skip
    url = await asyncio.wait_for(spawner.start(), 60)
    assert url == "http://127.0.0.1:8888"
    pod = await pod_of(admin_api, spawner)

    (notebook,) = pod["spec"]["containers"]
    assert {m["mountPath"]: (m["subPath"], m.get("readOnly", False)) for m in notebook["volumeMounts"]} == {
        "/home/jovyan": ("users/alice", False),
        "/mnt/projects/vision": ("projects/vision", False),
        "/mnt/global": ("global", True),
    }
    assert notebook["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert notebook["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    assert pod["spec"]["initContainers"][0]["name"] == "lavahub-storage"
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    labels = pod["metadata"]["labels"]
    assert (labels["lavahub.io/user"], labels["lavahub.io/project"], labels["lavahub.io/template"]) == (
        "alice", "vision", "pytorch",
    )  # fmt: skip
    assert labels["lavahub.io/template-version"] == "1"
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["LAVAHUB_PROJECT_DIR"] == "/mnt/projects/vision" and "NVIDIA_VISIBLE_DEVICES" not in env

    await spawner.stop()
    with pytest.raises(ApiException) as gone:
        await pod_of(admin_api, spawner)
    assert gone.value.status == 404


async def test_an_admin_writes_global_and_an_odd_name_gets_its_own_directory(spawners, admin_api):
    spawners.projects["default"] = Project("default", ("Root.Admin@example.org",))
    admin = spawners("Root.Admin@example.org", {"project": "default"}, admin=True)
    await asyncio.wait_for(admin.start(), 60)
    pod = await pod_of(admin_api, admin)
    mounts = {m["mountPath"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/mnt/global"].get("readOnly", False) is False
    personal = mounts["/home/jovyan"]["subPath"]
    assert personal.startswith("users/root-admin-example-org-") and personal.count("/") == 1
    assert pod["metadata"]["labels"]["lavahub.io/user"] == personal.removeprefix("users/")


async def test_cpu_workspaces_stay_off_gpu_nodes_and_see_no_gpu(spawners, admin_api):
    spawner = spawners("bob", {"project": "default", "template": "python"})
    await asyncio.wait_for(spawner.start(), 60)
    pod = await pod_of(admin_api, spawner)
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]}
    ]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "none"
    assert "nvidia.com/gpu" not in pod["spec"]["containers"][0]["resources"].get("limits", {})


async def test_a_node_pool_becomes_node_affinity_and_mig_a_resource(spawners, admin_api):
    spawners.projects["vision"] = replace(spawners.projects["vision"], node_pool="a100")
    spawner = spawners("alice", {"project": "vision", "template": "mig"})
    await asyncio.wait_for(spawner.start(), 60)
    pod = await pod_of(admin_api, spawner)
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "lavahub.io/node-pool", "operator": "In", "values": ["a100"]}]}
    ]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"


async def test_quota_counts_the_projects_running_pods_and_names_the_largest_users(spawners, admin_api):
    first = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 2})
    await asyncio.wait_for(first.start(), 60)
    second = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 2}, server="two")
    with pytest.raises(web.HTTPError) as refused:
        await asyncio.wait_for(second.start(), 60)
    assert refused.value.status_code == 400
    assert refused.value.jupyterhub_message == (  # type: ignore[attr-defined]
        "Project 'vision' has a quota of 3 GPUs; 2 are in use (alice 2) and this workspace asks for 2."
        " (ask for at most 1 GPUs, or stop a running workspace of the project)"
    )
    pods = await CoreV1Api(admin_api).list_namespaced_pod(first.namespace, label_selector=SELECTOR)
    assert [p.metadata.name for p in pods.items] == [first.pod_name], "nothing is created for a refusal"

    fits = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 1}, server="three")
    await asyncio.wait_for(fits.start(), 60)
    await first.stop()
    again = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 2}, server="four")
    await asyncio.wait_for(again.start(), 60), "the stopped workspace's GPUs count no more"


async def test_two_concurrent_spawns_cannot_both_take_the_last_gpus(spawners, admin_api):
    a = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 2}, server="a")
    b = spawners("alice", {"project": "vision", "template": "pytorch", "gpus": 2}, server="b")
    results = await asyncio.gather(a.start(), b.start(), return_exceptions=True)
    refused = [r for r in results if isinstance(r, web.HTTPError)]
    assert len(refused) == 1, results


async def test_a_template_disabled_while_a_workspace_runs(spawners, store, admin_api):
    spawner = spawners("alice", {"project": "vision", "template": "pytorch"})
    await asyncio.wait_for(spawner.start(), 60)
    store.put(replace(store.get("pytorch"), enabled=False), author="admin")
    assert (await spawner.poll()) is None, "the running workspace keeps running"
    await spawner.stop()
    with pytest.raises(web.HTTPError) as refused:
        await asyncio.wait_for(spawner.start(), 60)
    assert "disabled" in refused.value.jupyterhub_message  # type: ignore[attr-defined]
    form = await spawner.get_options_form()
    assert 'value="pytorch"' not in form and 'value="mig"' in form


async def test_the_form_offers_only_templates_of_the_users_projects(spawners):
    bob = spawners("bob", {})
    form = await bob.get_options_form()
    assert 'value="python"' in form and 'value="pytorch"' not in form and 'value="mig"' not in form


async def test_the_hub_identity_has_nothing_beyond_the_charts_rules(emulated, hub_identity):
    async with await emulated.api_client("hub") as api:
        core = CoreV1Api(api)
        await core.list_namespaced_pod(hub_identity)  # granted
        for forbidden in (
            core.list_namespaced_secret(hub_identity),
            core.list_namespaced_pod("default"),
            core.list_node(),
            core.create_namespaced_persistent_volume_claim(hub_identity, {"metadata": {"name": "x"}}),  # type: ignore[arg-type]
        ):
            with pytest.raises(ApiException) as denied:
                await forbidden
            assert denied.value.status == 403

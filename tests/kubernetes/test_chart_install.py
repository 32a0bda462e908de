"""The Helm chart installed with Helm's own SDK into the session's real API server, and upgraded.

Nothing runs the pods (tests/kubernetes/cluster.py); what is checked is that the server accepts
every object the chart makes, that an upgrade keeps what it must (the generated secrets, the
users' claims) and applies what changed, and that the hub's RBAC is only what the code uses.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi

from tests.chart import ROOT, chart, example, full_values, helm

from .cluster import KubeCluster, chart_rules
from .volcano import SCHEDULING, install_volcano_crds


def helm_config(cluster: KubeCluster, namespace: str) -> Any:
    return helm().Config(
        kube_apiserver=cluster.server,
        kube_token=cluster.admin_token,
        kube_ca_file=str(cluster.ca_file),
        namespace=namespace,
    )


def own_projects(values: dict[str, Any], suffix: str) -> dict[str, Any]:
    """`values` with its projects (and so their cluster-wide queues) named for this test alone."""
    platform = values["platform"]
    renamed = {}
    for name, project in platform.get("projects", {}).items():
        if project.get("queue") != "default":
            project = {**project, "queue": f"{project.get('queue', name)}-{suffix}"}
        renamed[f"{name}-{suffix}"] = project
    platform["projects"] = renamed
    for template in platform.get("templates", []):
        if "projects" in template:
            template["projects"] = [f"{p}-{suffix}" for p in template["projects"]]
    return values


@pytest.fixture
async def release_namespace(emulated: KubeCluster, admin_api: ApiClient) -> AsyncIterator[str]:
    """A namespace for a release, with Volcano's CRDs on the server; its cluster-wide objects go after."""
    await install_volcano_crds(admin_api)
    name = f"chart-{uuid.uuid4().hex[:8]}"
    core = CoreV1Api(admin_api)
    await core.create_namespace({"metadata": {"name": name}})  # type: ignore[arg-type]
    yield name
    custom = CustomObjectsApi(admin_api)
    queues = await custom.list_cluster_custom_object(*SCHEDULING, "queues")
    for queue in queues["items"]:
        if queue["metadata"]["name"].endswith(name.removeprefix("chart-")):
            await custom.delete_cluster_custom_object(*SCHEDULING, "queues", queue["metadata"]["name"])
    await core.delete_namespace(name)


async def secret_data(admin: ApiClient, namespace: str) -> dict[str, str]:
    secret = await CoreV1Api(admin).read_namespaced_secret("lavahub-secret", namespace)
    return {k: base64.b64decode(v).decode() for k, v in secret.data.items()}


async def test_the_default_values_install_and_upgrade_to_the_full_example(
    emulated: KubeCluster, admin_api: ApiClient, release_namespace: str
) -> None:
    namespace = release_namespace
    config = helm_config(emulated, namespace)
    installed = await asyncio.to_thread(
        config.install, chart(), "lavahub", {}, namespace=namespace, timeout=120
    )
    assert (installed["status"], installed["revision"]) == ("deployed", 1)
    core = CoreV1Api(admin_api)
    config_map = await core.read_namespaced_config_map("lavahub-config", namespace)
    assert config_map.data["jupyterhub_config.py"] == (ROOT / "jupyterhub_config.py").read_text()
    assert yaml.safe_load(config_map.data["lavahub.yaml"])["auth"] == {"type": "local"}
    first = await secret_data(admin_api, namespace)
    assert len(first["cookie-secret"]) == 64 and first["proxy-token"]
    claims = {c.metadata.name for c in (await core.list_namespaced_persistent_volume_claim(namespace)).items}
    assert claims == {"lavahub-hub-data", "lavahub-home", "lavahub-projects", "lavahub-global"}

    # storage is chosen at install: an upgrade that would change the claims is refused, in words
    with pytest.raises(helm().HelmError, match="Kubernetes claims cannot change"):
        await asyncio.to_thread(
            config.upgrade, chart(), "lavahub", example("static-storage"), namespace=namespace, timeout=120
        )
    suffix = namespace.removeprefix("chart-")
    values = own_projects(full_values(), suffix)
    upgraded = await asyncio.to_thread(
        config.upgrade, chart(), "lavahub", values, namespace=namespace, timeout=120
    )
    assert (upgraded["status"], upgraded["revision"]) == ("deployed", 2)

    # what changed is applied: identity, the database, the Ingress, one queue per project
    config_map = await core.read_namespaced_config_map("lavahub-config", namespace)
    platform = yaml.safe_load(config_map.data["lavahub.yaml"])
    assert platform["auth"]["type"] == "oauth" and platform["subdomain_host"] == "https://hub.example.org"
    custom = CustomObjectsApi(admin_api)
    for project in ("vision", "nlp"):
        queue = await custom.get_cluster_custom_object(*SCHEDULING, "queues", f"{project}-{suffix}")
        assert queue["spec"]["capability"]["cpu"] == str(
            values["platform"]["projects"][f"{project}-{suffix}"]["quota"]["cpus"]
        )
    then = await secret_data(admin_api, namespace)
    assert then["database-url"] == values["hub"]["db"]["lavahubUrl"]
    assert then["oidc-client-secret"] == values["oidc"]["clientSecret"]
    # what must last is kept: the cookie secret (users stay logged in) and the proxy's token
    assert (then["cookie-secret"], then["proxy-token"]) == (first["cookie-secret"], first["proxy-token"])
    history = await asyncio.to_thread(config.history, "lavahub")
    assert [(r["revision"], r["status"]) for r in history] == [(1, "superseded"), (2, "deployed")]

    uninstalled = await asyncio.to_thread(config.uninstall, "lavahub")
    assert uninstalled is not None
    # users' files and the hub's database outlive the release
    left = {c.metadata.name for c in (await core.list_namespaced_persistent_volume_claim(namespace)).items}
    assert left == claims


async def test_static_volumes_and_jobs_in_a_namespace_of_their_own_install(
    emulated: KubeCluster, admin_api: ApiClient, release_namespace: str
) -> None:
    namespace = release_namespace
    jobs = f"{namespace}-jobs"
    core = CoreV1Api(admin_api)
    await core.create_namespace({"metadata": {"name": jobs}})  # type: ignore[arg-type]
    try:
        values = example("static-storage")
        values["platform"]["jobs"]["volcano"]["namespace"] = jobs
        config = helm_config(emulated, namespace)
        installed = await asyncio.to_thread(
            config.install, chart(), "lavahub", values, namespace=namespace, timeout=120
        )
        assert installed["status"] == "deployed"
        for ns in (namespace, jobs):
            claims = (await core.list_namespaced_persistent_volume_claim(ns)).items
            for claim in (c for c in claims if c.metadata.name != "lavahub-hub-data"):
                volume = await core.read_persistent_volume(claim.spec.volume_name)
                assert (
                    volume.spec.claim_ref.namespace == ns
                    and volume.spec.claim_ref.name == claim.metadata.name
                )
                assert volume.spec.csi.volume_attributes["rootPath"].startswith("/volumes/lavahub/")
        await asyncio.to_thread(config.uninstall, "lavahub")
    finally:
        for volume in (await core.list_persistent_volume()).items:
            if volume.metadata.name.startswith(f"{namespace}-"):
                await core.delete_persistent_volume(volume.metadata.name)
        await core.delete_namespace(jobs)


async def test_bad_values_leave_nothing_behind(
    emulated: KubeCluster, admin_api: ApiClient, release_namespace: str
) -> None:
    config = helm_config(emulated, release_namespace)
    with pytest.raises(helm().HelmError, match="/platform/auth/type"):
        await asyncio.to_thread(
            config.install,
            chart(),
            "lavahub",
            {"platform": {"auth": {"type": "shared"}}},
            namespace=release_namespace,
        )
    assert await asyncio.to_thread(config.list) in ([], None)
    secrets = (await CoreV1Api(admin_api).list_namespaced_secret(release_namespace)).items
    assert not [s for s in secrets if s.metadata.name.startswith("lavahub")]


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def used(cluster: KubeCluster, user: str) -> set[tuple[str, str, str]]:
    """(group, resource[/subresource], verb) of `user`'s requests that RBAC let through.

    (Refused ones are the tests' own probes of what the identity may not do, test_kube_spawner's.)"""
    done = set()
    for event in cluster.requests_of(user):
        ref = event.get("objectRef") or {}
        if "resource" not in ref or (event.get("responseStatus") or {}).get("code") == 403:
            continue  # discovery and the like (no object), or a probe RBAC refused
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        done.add((ref.get("apiGroup", ""), resource, event["verb"]))
    return done


@pytest.mark.after_the_kubernetes_tests
def test_the_hubs_rbac_grants_nothing_the_code_does_not_use(
    emulated: KubeCluster, request: pytest.FixtureRequest
) -> None:
    """The spawner's and the jobs service's tests ran as identities bound to exactly the chart's rules
    (cluster.grant_hub_role, grant_jobs_roles); the API server's audit log says what they asked for."""
    ran = {Path(str(item.path)).stem for item in request.session.items}
    needed = {"test_kube_spawner", "test_kube_hub", "test_volcano_backend", "test_volcano_magic"}
    if not needed <= ran:
        missing = ", ".join(sorted(needed - ran))
        pytest.skip(f"reads what {missing} asked the API server for: run tests/kubernetes whole")
    rules = chart_rules()
    for user, grants in (("hub", rules["hub"]), ("jobs", rules["jobs"] + rules["jobs-cluster"])):
        unused = sorted(granted(grants) - used(emulated, user))
        assert not unused, f"the chart grants {user} what no test saw it use: {unused}"

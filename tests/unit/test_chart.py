"""The Helm chart, rendered by Helm's own SDK: what it makes, for the default values and the full example.

Installing it into a real API server is tests/kubernetes/test_chart_install.py.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lavahub.chart import values_schema
from lavahub.config import parse_config
from services.jobs.backends.volcano.render import PLUGINS
from spawner.resources import format_cpus, format_memory
from tests.chart import CHART, EXAMPLES, ROOT, chart, example, full_values, helm, notes, objects, one, render
from tests.kubernetes.volcano import crd_schemas

CASES = ["default values", "full", "static-storage"]  # the defaults, and helm/lavahub/examples/*.yaml


@pytest.fixture(params=CASES)
def values(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {} if request.param == "default values" else example(request.param)


def platform_of(found: list[dict[str, Any]]) -> Any:
    config_map = one(found, "ConfigMap", "lavahub-config")
    return parse_config(yaml.safe_load(config_map["data"]["lavahub.yaml"]))


def test_values_schema_json_is_made_from_the_platform_configs_schema() -> None:
    committed = json.loads((CHART / "values.schema.json").read_text())
    assert committed == values_schema(), (
        "helm/lavahub/values.schema.json is stale: `make chart-schema` writes it again"
    )
    # the platform part is the config's own schema, not a copy written by hand
    assert committed["properties"]["platform"]["allOf"][0] == {"$ref": "#/$defs/PlatformConfig"}
    assert committed["$defs"]["PlatformConfig"]["properties"]["culler"]


def test_every_example_is_tested() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == sorted(CASES[1:])


def test_the_chart_lints_clean() -> None:
    for given in (None, full_values(), example("static-storage")):
        report = helm().lint(str(CHART), given, strict=True, namespace="lavahub", kube_version="v1.20.2")
        assert report["errors"] == [] and all(m["severity"] < 2 for m in report["messages"]), report


def test_every_object_is_valid_for_current_kubernetes_and_volcano(values: dict[str, Any]) -> None:
    version = kubernetes_validate.latest_version()
    volcano = crd_schemas()
    found = objects(values)
    assert found
    for obj in found:
        if obj["apiVersion"].startswith("scheduling.volcano.sh/"):
            jsonschema.validate(obj, volcano[obj["kind"]])
        else:
            kubernetes_validate.validate(obj, version, strict=True)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "lavahub"


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ({"platform": {"auth": {"type": "shared"}}}, ["/platform/auth/type", "'local', 'oauth'"]),
        ({"platform": {"auth": {"admin_password": "x" * 40}}}, ["/platform/auth/admin_password", "null"]),
        ({"platform": {"auth": {"type": "pam"}}}, ["/platform/auth/type"]),
        (
            {"platform": {"auth": {"type": "oauth", "oauth": {"client_id": "h", "client_secret": "s"}}}},
            ["/platform/auth/oauth/client_secret", "null"],
        ),
        ({"platform": {"backend": "local"}}, ["/platform/backend", "kubernetes"]),
        ({"platform": {"projects": {"Team A": {}}}}, ["Team A", "does not match pattern"]),
        ({"platform": {"templates": [{"slug": "x"}]}}, ["/platform/templates/0", "image"]),
        ({"platform": {"culer": {}}}, ["/platform", "'culer' not allowed"]),
        ({"hub": {"db": {"type": "mysql"}}}, ["/hub/db/type", "'sqlite', 'postgresql'"]),
        ({"hub": {"db": {"type": "postgresql", "url": "mysql://h/db"}}}, ["/hub/db/url", "does not match"]),
        ({"hub": {"db": {"type": "postgresql", "url": "postgresql://h/db"}}}, ["/hub/db/lavahubUrl"]),
        ({"hub": {"cookieSecret": "short"}}, ["/hub/cookieSecret"]),
        ({"storage": {"size": {"global": "lots"}}}, ["/storage/size/global", "does not match"]),
        ({"ingres": {"enabled": True}}, ["'ingres' not allowed"]),
        ({"platform": {"database_url": "postgresql://u:pw@db/x"}}, ["/platform/database_url", "null"]),
        ({"imagePullSecrets": ["regcred"]}, ["/imagePullSecrets/0", "want object"]),
    ],
)
def test_bad_values_are_refused_with_the_key_and_the_reason(bad: dict[str, Any], says: list[str]) -> None:
    with pytest.raises(helm().HelmValuesError) as refused:
        render(bad)
    message = str(refused.value)
    for part in says:
        assert part in message, message
    assert "Traceback" not in message and len(message) < 2000


def test_values_the_schema_cannot_judge_fail_the_render_with_a_message() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"platform": {"auth": {"type": "oauth", "oauth": {"client_id": "h", "issuer": "https://id"}}}},
         "oidc.clientSecret (or oidc.existingSecret) is required"),
        ({"platform": {"jobs": {"backend": "volcano", "volcano": {"namespace": "jobs"}}}},
         "use storage.mode static"),
        ({"ingress": {"enabled": True}}, "ingress.hosts: name at least one host"),
    ]  # fmt: skip
    for bad, says in cases:
        with pytest.raises(helm().HelmRenderError, match=re.escape(says)):
            render(bad)


def test_the_hub_runs_the_repositorys_own_jupyterhub_config(values: dict[str, Any]) -> None:
    found = objects(values)
    config_map = one(found, "ConfigMap", "lavahub-config")
    assert config_map["data"]["jupyterhub_config.py"] == (ROOT / "jupyterhub_config.py").read_text()
    pod = one(found, "Deployment", "lavahub-hub")["spec"]["template"]["spec"]
    hub = pod["containers"][0]
    assert hub["args"] == ["jupyterhub", "-f", "/etc/lavahub/jupyterhub_config.py"]
    # lavahub's schema is migrated first, with the hub's own config and data
    (upgrade,) = pod["initContainers"]
    assert upgrade["args"] == ["lavahub", "db", "upgrade"]
    assert (upgrade["env"], upgrade["volumeMounts"], upgrade["image"]) == (
        hub["env"],
        hub["volumeMounts"],
        hub["image"],
    )
    mounts = {m["mountPath"]: m for m in hub["volumeMounts"]}
    assert mounts["/etc/lavahub/jupyterhub_config.py"]["subPath"] == "jupyterhub_config.py"
    env = {e["name"]: e for e in hub["env"]}
    assert env["LAVAHUB_CONFIG"]["value"] == "/etc/lavahub/lavahub.yaml"
    assert mounts["/etc/lavahub/lavahub.yaml"]["subPath"] == "lavahub.yaml"


def test_the_platform_config_is_the_values_with_what_the_chart_knows(values: dict[str, Any]) -> None:
    platform = platform_of(objects(values))
    assert platform.backend == "kubernetes" and str(platform.data_dir) == "/srv/lavahub"
    assert platform.kubernetes.namespace == "lavahub"  # the release's
    assert platform.admins == tuple(values.get("platform", {}).get("admins", ["admin"]))
    for name, project in platform.projects.items():
        assert project.queue == (
            values.get("platform", {}).get("projects", {}).get(name, {}).get("queue") or name
        )
    if platform.auth.type == "oauth":
        assert platform.auth.oauth is not None
        assert str(platform.auth.oauth.client_secret_file) == "/etc/lavahub/secrets/oidc-client-secret"


def test_the_default_values_make_one_project_of_the_admins_in_volcanos_own_queue() -> None:
    found = objects({})
    platform = platform_of(found)
    assert {n: (p.members, p.queue) for n, p in platform.projects.items()} == {
        "default": (("admin",), "default")
    }
    assert not [o for o in found if o["kind"] == "Queue"]  # Volcano makes and keeps `default`


def test_each_project_gets_its_queue_capped_at_its_quota() -> None:
    found = objects(full_values())
    made = {o["metadata"]["name"]: o for o in found if o["kind"] == "Queue"}
    projects = platform_of(found).projects
    assert set(made) == {"vision", "nlp"}  # sandbox's is `default`: Volcano's own
    for name, queue in made.items():
        quota = projects[name].quota  # as the platform config reads it
        assert queue["spec"] == {
            "weight": 1,
            "reclaimable": False,
            "capability": {
                "cpu": format_cpus(quota.cpus or 0),
                "memory": format_memory(quota.memory or 0),
                "nvidia.com/gpu": str(quota.gpus),
            },
        }
        assert queue["metadata"]["annotations"]["lavahub.io/project"] == name
        assert queue["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    # a quota that leaves a resource out leaves the queue unlimited in it (Volcano's reading)
    partial = {"platform": {"jobs": {"backend": "volcano"}, "projects": {"cpu-only": {"quota": {"cpus": 2}}}}}
    (queue,) = [o for o in objects(partial) if o["kind"] == "Queue"]
    assert queue["spec"]["capability"] == {"cpu": "2"}
    no_quota = {"platform": {"jobs": {"backend": "volcano"}, "projects": {"open": {}}}}
    (queue,) = [o for o in objects(no_quota) if o["kind"] == "Queue"]
    assert "capability" not in queue["spec"]


def test_the_services_ports_are_the_platform_configs(values: dict[str, Any]) -> None:
    found = objects(values)
    platform = platform_of(found)
    hub = {p["name"]: p["port"] for p in one(found, "Service", "lavahub-hub")["spec"]["ports"]}
    assert hub == {
        "hub": platform.hub_port,
        "jobs": platform.jobs.port,
        "templates": platform.templates_service.port,
    }
    api = one(found, "Service", "lavahub-proxy-api")["spec"]["ports"]
    assert [p["port"] for p in api] == [platform.proxy_api_port]
    proxy = one(found, "Deployment", "lavahub-proxy")["spec"]["template"]["spec"]["containers"][0]
    assert f"--port={platform.port}" in proxy["args"]
    assert f"--default-target=http://lavahub-hub:{platform.hub_port}" in proxy["args"]


def test_the_hub_holds_exactly_the_rules_the_spawner_and_the_jobs_service_use() -> None:
    found = objects(full_values())
    files = CHART / "files"
    rules = {
        ("Role", "lavahub-hub"): "hub-role-rules.yaml",
        ("Role", "lavahub-hub-jobs"): "jobs-role-rules.yaml",
        ("ClusterRole", "lavahub-lavahub-hub-jobs"): "jobs-cluster-role-rules.yaml",
    }
    granted = [o for o in found if o["kind"] in ("Role", "ClusterRole")]
    assert {(o["kind"], o["metadata"]["name"]) for o in granted} == set(rules)
    for (kind, name), file in rules.items():
        assert one(found, kind, name)["rules"] == yaml.safe_load((files / file).read_text())
    assert one(found, "Role", "lavahub-hub")["metadata"]["namespace"] == "lavahub"
    assert one(found, "Role", "lavahub-hub-jobs")["metadata"]["namespace"] == "lavahub"
    elsewhere = objects(example("static-storage"))
    assert one(elsewhere, "Role", "lavahub-hub-jobs")["metadata"]["namespace"] == "lavahub-jobs"
    assert one(elsewhere, "NetworkPolicy", "lavahub-jobs")["metadata"]["namespace"] == "lavahub-jobs"
    for binding in (o for o in found if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "lavahub-hub", "namespace": "lavahub"}
        ]
    # the proxy gets no Kubernetes identity at all
    proxy = one(found, "Deployment", "lavahub-proxy")["spec"]["template"]["spec"]
    assert proxy["automountServiceAccountToken"] is False and "serviceAccountName" not in proxy


def test_secrets_are_in_the_secret_only() -> None:
    values = full_values()
    found = objects(values)
    secret = one(found, "Secret", "lavahub-secret")
    assert set(secret["data"]) == {
        "cookie-secret",
        "proxy-token",
        "oidc-client-secret",
        "hub-database-url",
        "database-url",
    }
    everything_else = json.dumps([o for o in found if o["kind"] != "Secret"])
    for value in (values["oidc"]["clientSecret"], values["hub"]["db"]["url"], "change-me"):
        assert value not in everything_else
    for deployment in (o for o in found if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for var in container.get("env", []):
                assert "value" not in var or not any(
                    s in var["name"] for s in ("SECRET", "TOKEN", "DATABASE")
                )


def test_secrets_are_generated_once_and_kept_when_not_given() -> None:
    first = one(objects({}), "Secret", "lavahub-secret")["data"]
    again = one(objects({}), "Secret", "lavahub-secret")["data"]
    assert first["cookie-secret"] != again["cookie-secret"]  # offline, `lookup` finds no release: new ones
    assert len(base64.b64decode(first["cookie-secret"])) == 64  # 32 bytes in hex, as JPY_COOKIE_SECRET takes
    given = one(objects({"hub": {"cookieSecret": "ab" * 32}}), "Secret", "lavahub-secret")["data"]
    assert base64.b64decode(given["cookie-secret"]).decode() == "ab" * 32


def peers(rule: dict[str, Any]) -> list[dict[str, Any]]:
    return rule.get("from") or rule.get("to") or []


def test_network_policies_keep_workspaces_and_jobs_from_the_hubs_internals() -> None:
    found = objects(full_values())
    platform = platform_of(found)
    hub = one(found, "NetworkPolicy", "lavahub-hub")["spec"]
    by_port = {r["ports"][0]["port"]: peers(r) for r in hub["ingress"]}
    workspaces = {"component": "singleuser-server"}
    jobs = {"lavahub.io/component": "job"}
    proxy = {
        "app.kubernetes.io/name": "lavahub",
        "app.kubernetes.io/instance": "lavahub",
        "app.kubernetes.io/component": "proxy",
    }

    def selects(found_peers: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [p["podSelector"]["matchLabels"] for p in found_peers]

    assert selects(by_port[platform.templates_service.port]) == [proxy]
    hub_pod = {**proxy, "app.kubernetes.io/component": "hub"}
    # workspaces need the hub's API (OAuth, activity); the hub's own services call it at its Service
    assert selects(by_port[platform.hub_port]) == [proxy, workspaces, hub_pod]
    assert selects(by_port[platform.jobs.port]) == [proxy, workspaces, jobs]
    proxy_policy = one(found, "NetworkPolicy", "lavahub-proxy")["spec"]
    api_rule = next(r for r in proxy_policy["ingress"] if r["ports"][0]["port"] == platform.proxy_api_port)
    assert selects(peers(api_rule)) == [hub_pod]
    job_policy = one(found, "NetworkPolicy", "lavahub-jobs")
    # no job's workers are reached through the chart's policy: each job's own, made by Volcano's svc
    # plugin (on for every framework), lets its workers alone reach each other
    assert job_policy["spec"]["ingress"] == [] and "Ingress" in job_policy["spec"]["policyTypes"]
    assert all("svc" in plugins for plugins in PLUGINS.values())

    def reaches_the_hub(rule: dict[str, Any]) -> bool:
        labels = (peers(rule) or [{}])[0].get("podSelector", {}).get("matchLabels", {})
        return bool(labels.get("app.kubernetes.io/component") == "hub")

    to_hub = [r for r in job_policy["spec"]["egress"] if reaches_the_hub(r)]
    egress_ports = {p["port"] for r in to_hub for p in r["ports"]}
    assert egress_ports == {platform.jobs.port}  # job workers reach the jobs service, not the hub's API
    # by default workspaces and jobs reach the internet, not a cluster's private addresses
    workspaces_policy = one(found, "NetworkPolicy", "lavahub-workspaces")["spec"]
    (anywhere,) = [r for r in workspaces_policy["egress"] if "ipBlock" in (peers(r) or [{}])[0]]
    block = peers(anywhere)[0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(block["except"])
    assert not [o for o in objects({"networkPolicy": {"enabled": False}}) if o["kind"] == "NetworkPolicy"]


def test_static_cephfs_volumes_are_one_per_claim_and_namespace_on_the_given_paths() -> None:
    found = objects(example("static-storage"))
    claims = [o for o in found if o["kind"] == "PersistentVolumeClaim" and o["metadata"].get("namespace")]
    assert sorted((c["metadata"]["namespace"], c["metadata"]["name"]) for c in claims) == [
        (ns, name)
        for ns in ("lavahub", "lavahub-jobs")
        for name in ("lavahub-global", "lavahub-home", "lavahub-projects")
    ]
    for claim in claims:
        volume = one(found, "PersistentVolume", claim["spec"]["volumeName"])
        assert volume["spec"]["claimRef"] == {
            "namespace": claim["metadata"]["namespace"],
            "name": claim["metadata"]["name"],
        }
        assert volume["spec"]["accessModes"] == ["ReadWriteMany"] == claim["spec"]["accessModes"]
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert volume["spec"]["csi"]["volumeAttributes"]["staticVolume"] == "true"
    home = one(found, "PersistentVolume", "lavahub-lavahub-lavahub-home")["spec"]["csi"]["volumeAttributes"]
    assert home["rootPath"] == "/volumes/lavahub/home"
    dynamic = [
        o for o in objects({}) if o["kind"] == "PersistentVolumeClaim" and o["metadata"].get("namespace")
    ]
    assert {c["spec"]["storageClassName"] for c in dynamic} == {"cephfs"}
    assert not [o for o in objects({}) if o["kind"] == "PersistentVolume"]


def test_ingress_with_tls_and_a_subdomain_per_user() -> None:
    values = full_values()
    found = objects(values)
    ingress = one(found, "Ingress", "lavahub-proxy")["spec"]
    assert [r["host"] for r in ingress["rules"]] == ["hub.example.org", "*.hub.example.org"]
    assert ingress["tls"] == values["ingress"]["tls"]
    assert platform_of(found).subdomain_host == "https://hub.example.org"


def test_notes_tell_the_operator_what_to_do_next() -> None:
    default = notes({})
    assert "kubectl -n lavahub exec deploy/lavahub-hub -- lavahub users reset-password admin" in default
    assert "port-forward svc/lavahub-proxy-public" in default
    full = notes(full_values())
    assert "https://hub.example.org/" in full and "https://hub.example.org/hub/oauth_callback" in full
    assert "kubectl get queue" in full


def test_the_chart_documents_every_value_it_takes() -> None:
    documented = (ROOT / "docs" / "deploy-kubernetes.md").read_text()

    def keys(node: dict[str, Any], prefix: str = "") -> list[str]:
        out = []
        for key, sub in node.get("properties", {}).items():
            out.append(prefix + key)
            if sub.get("type") == "object" and "properties" in sub:
                out.extend(keys(sub, prefix + key + "."))
        return out

    chart_keys = [k for k in keys(values_schema()) if not k.startswith("platform")]
    missing = [k for k in chart_keys if f"`{k}`" not in documented]
    assert not missing, f"docs/deploy-kubernetes.md does not describe {missing}"


def test_the_guides_values_files_install_as_written() -> None:
    """Every values file docs/deploy-kubernetes.md shows (a yaml block with `platform`) renders."""
    guide = (ROOT / "docs" / "deploy-kubernetes.md").read_text()
    shown = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", guide, re.S)]
    values_files = [v for v in shown if isinstance(v, dict) and "platform" in v]
    assert values_files, "the guide shows no values file"
    for values in values_files:
        found = objects(values)
        assert platform_of(found).backend == "kubernetes"


def test_chart_files_resolve_inside_the_chart() -> None:
    # files/jupyterhub_config.py is a link to the repository's own file, which Helm follows
    link = CHART / "files" / "jupyterhub_config.py"
    assert link.is_symlink() and link.resolve() == (ROOT / "jupyterhub_config.py").resolve()
    assert any(f["name"] == "files/jupyterhub_config.py" for f in chart().files)
    assert Path(link.resolve()).read_text() == (ROOT / "jupyterhub_config.py").read_text()

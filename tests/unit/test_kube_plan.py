"""The Kubernetes plan: what a workspace pod mounts, asks for and where it may run."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lavahub.config import KubernetesConfig, KubernetesStorage
from spawner.kube_plan import RESOURCES_ANNOTATION, plan_kube_workspace, pod_resources
from spawner.options import resolve_options
from spawner.projects import Project
from spawner.templates import template_from_dict

STORAGE = KubernetesStorage()
SETTINGS = KubernetesConfig()


def plan_for(projects, templates, options, *, user="alice", admin=False, settings=SETTINGS, storage=STORAGE):
    mine = {n: p for n, p in projects.items() if user in p.members or admin}
    request = resolve_options(options, user=user, admin=admin, projects=mine, templates=templates)
    return plan_kube_workspace(request, holder=user, storage=storage, settings=settings)


def mounts(plan):
    return {m["mountPath"]: m for m in plan.volume_mounts}


def test_three_volumes_with_their_sub_paths(projects, templates):
    plan = plan_for(projects, templates, {"project": "vision", "template": "pytorch"})
    assert mounts(plan) == {
        "/home/jovyan": {"name": "lavahub-personal", "mountPath": "/home/jovyan",
                         "subPath": "users/alice", "readOnly": False},
        "/mnt/projects/vision": {"name": "lavahub-project", "mountPath": "/mnt/projects/vision",
                                 "subPath": "projects/vision", "readOnly": False},
        "/mnt/global": {"name": "lavahub-global", "mountPath": "/mnt/global",
                        "subPath": "global", "readOnly": True},
    }  # fmt: skip
    assert plan.pod_volumes == [
        {"name": "lavahub-personal", "persistentVolumeClaim": {"claimName": "lavahub-home"}},
        {"name": "lavahub-project", "persistentVolumeClaim": {"claimName": "lavahub-projects"}},
        {"name": "lavahub-global", "persistentVolumeClaim": {"claimName": "lavahub-global"}},
    ]
    assert plan.env["LAVAHUB_PROJECT_DIR"] == "/mnt/projects/vision"
    assert plan.env["LAVAHUB_PERSONAL_DIR"] == "/home/jovyan"


def test_admins_write_the_global_volume(projects, templates):
    plan = plan_for(projects, templates, {"project": "default"}, user="root-admin", admin=True)
    assert mounts(plan)["/mnt/global"]["readOnly"] is False


def test_one_claim_for_every_kind_is_one_pod_volume(projects, templates):
    shared = KubernetesStorage(personal_claim="cephfs", project_claim="cephfs", global_claim="cephfs")
    plan = plan_for(projects, templates, {"project": "default"}, storage=shared)
    assert plan.pod_volumes == [
        {"name": "lavahub-personal", "persistentVolumeClaim": {"claimName": "cephfs"}}
    ]
    assert {m["name"] for m in plan.volume_mounts} == {"lavahub-personal"}
    assert [m["subPath"] for m in plan.volume_mounts] == ["users/alice", "projects/default", "global"]


@pytest.mark.parametrize("name", ["Alice.Smith@x.org", "alice-smith-x-org", "ALICE", "a..b"])
def test_odd_user_names_get_their_own_safe_directory_and_label(projects, templates, name):
    odd = {"default": replace(projects["default"], members=(name,))}
    plan = plan_for(odd, templates, {}, user=name)
    sub_path = mounts(plan)["/home/jovyan"]["subPath"]
    assert sub_path.startswith("users/") and "/" not in sub_path[len("users/") :] and ".." not in sub_path
    assert plan.labels["lavahub.io/user"] == sub_path[len("users/") :]
    others = {"Alice.Smith@x.org", "alice-smith-x-org", "ALICE", "a..b"} - {name}
    for other in others:
        other_projects = {"default": replace(projects["default"], members=(other,))}
        assert (
            mounts(plan_for(other_projects, templates, {}, user=other))["/home/jovyan"]["subPath"] != sub_path
        )


def test_init_container_creates_only_missing_directories_with_owner_and_mode(projects, templates):
    plan = plan_for(projects, templates, {"project": "vision", "template": "pytorch"})
    init = plan.init_container
    script = init["command"][2]
    assert init["command"][:2] == ["sh", "-ec"]
    assert "[ -d /lavahub/lavahub-personal/users/alice ] || { mkdir -p" in script
    assert "chown 1000:100 /lavahub/lavahub-personal/users/alice && chmod 0700" in script
    assert "chmod 2770 /lavahub/lavahub-project/projects/vision" in script
    assert "chmod 0755 /lavahub/lavahub-global/global" in script
    assert [m["mountPath"] for m in init["volumeMounts"]] == [
        "/lavahub/lavahub-personal", "/lavahub/lavahub-project", "/lavahub/lavahub-global",
    ]  # fmt: skip
    traits = plan.spawner_traits()
    assert (traits["uid"], traits["gid"], traits["fs_gid"]) == (1000, 100, 100)


def test_gpus_become_limits_a_model_selector_and_tolerations(projects, templates):
    plan = plan_for(
        projects, templates,
        {"project": "vision", "template": "pytorch", "gpus": 2, "gpu_type": "NVIDIA-A100-SXM4-80GB"},
    )  # fmt: skip
    traits = plan.spawner_traits()
    assert traits["extra_resource_limits"] == {"nvidia.com/gpu": "2"}
    assert traits["extra_resource_guarantees"] == {"nvidia.com/gpu": "2"}
    assert traits["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in traits["tolerations"]
    assert "NVIDIA_VISIBLE_DEVICES" not in plan.env, "the device plugin sets it for GPU pods"
    assert traits["node_affinity_required"] == []


def test_model_label_is_configurable(projects, templates):
    settings = SETTINGS.model_copy(update={"gpu_product_label": "cloud.google.com/gke-accelerator"})
    options = {"project": "vision", "template": "pytorch", "gpu_type": "NVIDIA-A100-SXM4-80GB"}
    plan = plan_for(projects, templates, options, settings=settings)
    assert plan.node_selector == {"cloud.google.com/gke-accelerator": "NVIDIA-A100-SXM4-80GB"}


def test_a_workspace_without_gpus_sees_none_and_stays_off_gpu_nodes(projects, templates):
    plan = plan_for(projects, templates, {"project": "default", "template": "python"})
    assert plan.env["NVIDIA_VISIBLE_DEVICES"] == "none"
    assert plan.extra_resources == {} and plan.tolerations == []
    assert plan.node_affinity_required == [
        {"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"}]}
    ]
    allowed = SETTINGS.model_copy(update={"cpu_workspaces_off_gpu_nodes": False})
    assert (
        plan_for(projects, templates, {"project": "default"}, settings=allowed).node_affinity_required == []
    )


def test_node_pool_and_gpu_rule_are_one_term(projects, templates):
    pooled = {**projects, "default": replace(projects["default"], node_pool="cpu-pool")}
    plan = plan_for(pooled, templates, {"project": "default", "template": "python"})
    assert plan.node_affinity_required == [
        {"matchExpressions": [
            {"key": "lavahub.io/node-pool", "operator": "In", "values": ["cpu-pool"]},
            {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"},
        ]}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("resource", "memory", "limits"),
    [
        ("nvidia.com/mig-1g.10gb", 0, {"nvidia.com/mig-1g.10gb": "1"}),
        ("volcano.sh/vgpu-number", 10240, {"volcano.sh/vgpu-number": "1", "volcano.sh/vgpu-memory": "10240"}),
    ],
)
def test_templates_may_name_other_gpu_resources(projects, resource, memory, limits):
    template = template_from_dict(
        {"slug": "sliced", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06", "gpus": 1,
         "max_gpus": 1, "gpu_resource": resource, "gpu_memory": memory}
    )  # fmt: skip
    plan = plan_for(projects, [template], {"project": "default"})
    assert plan.extra_resources == limits


def test_labels_and_quota_annotation(projects, templates):
    stored = [t.with_version(3) for t in templates]
    plan = plan_for(projects, stored, {"project": "vision", "template": "pytorch", "cpus": 4})
    assert plan.labels == {
        "lavahub.io/user": "alice", "lavahub.io/project": "vision",
        "lavahub.io/template": "pytorch", "lavahub.io/template-version": "3",
    }  # fmt: skip
    held = pod_resources(plan.annotations)
    assert held is not None and (held.cpus, held.memory, held.gpus) == (4.0, 4 * 2**30, 1)
    assert pod_resources({RESOURCES_ANNOTATION: "not json"}) is None
    assert pod_resources({}) is None
    assert json.loads(plan.annotations[RESOURCES_ANNOTATION]) == {"cpus": 4.0, "gpus": 1, "memory": "4Gi"}


def test_template_environment_comes_first_and_lavahub_names_win(templates):
    template = template_from_dict(
        {"slug": "envy", "image": "python:3.11", "env": {"TORCH_HOME": "/mnt/global/torch", "X": "{braces}"}}
    )
    projects = {"default": Project("default", ("alice",))}
    plan = plan_for(projects, [template], {})
    assert plan.env["TORCH_HOME"] == "/mnt/global/torch" and plan.env["X"] == "{braces}"
    assert plan.env["LAVAHUB_TEMPLATE"] == "envy"


def test_workspaces_may_wait_in_their_projects_volcano_queue(projects, templates):
    mine = {n: p for n, p in projects.items() if "alice" in p.members}
    request = resolve_options({}, user="alice", admin=False, projects=mine, templates=templates)
    plan = plan_kube_workspace(
        request, holder="alice", storage=STORAGE, settings=SETTINGS, volcano_scheduler="volcano"
    )
    traits = plan.spawner_traits()
    assert traits["scheduler_name"] == "volcano"
    assert traits["extra_annotations"]["scheduling.volcano.sh/queue-name"] == request.project.queue
    assert "scheduler_name" not in plan_for(projects, templates, {}).spawner_traits()

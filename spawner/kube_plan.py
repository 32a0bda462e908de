"""What the Kubernetes backend does for one workspace: the pod's volumes, resources, placement.

Pure, like the local plan: the spawner applies `spawner_traits()` to KubeSpawner
and `lavahub render-workspace --backend kubernetes` prints the pod they make.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lavahub.config import KubernetesConfig, KubernetesStorage

from .names import safe_segment
from .resources import Resources, format_cpus, format_memory, parse_memory
from .templates import VGPU_RESOURCE
from .volumes import GLOBAL, PERSONAL, PROJECT, Volume, kube_volume_plan
from .workspace import WorkspaceRequest, workspace_env

LABEL_PREFIX = "lavahub.io"
RESOURCES_ANNOTATION = f"{LABEL_PREFIX}/resources"  # what the workspace counts against quota
HOLDER_ANNOTATION = f"{LABEL_PREFIX}/holder"  # `alice` or `alice/ws2`, as quota messages name it
VGPU_MEMORY = "volcano.sh/vgpu-memory"
VOLCANO_QUEUE_ANNOTATION = "scheduling.volcano.sh/queue-name"
INIT_MOUNT = "/lavahub"
# directory modes: a home only for its owner, a project for its group, the global area for reading
MODES = {PERSONAL: "0700", PROJECT: "2770", GLOBAL: "0755"}


@dataclass(frozen=True)
class KubeWorkspacePlan:
    request: WorkspaceRequest
    holder: str
    volumes: tuple[Volume, ...]
    settings: KubernetesConfig
    storage: KubernetesStorage
    env: dict[str, str] = field(default_factory=dict)
    volcano_scheduler: str | None = None  # set: Volcano places the pod, in the project's queue

    # -- what the pod asks for -----------------------------------------------------------
    @property
    def extra_resources(self) -> dict[str, str]:
        """GPU limits (and vGPU memory); Kubernetes refuses extended resources without a limit."""
        r, t = self.request.resources, self.request.template
        if not r.gpus:
            return {}
        limits = {t.gpu_resource: str(r.gpus)}
        if t.gpu_resource == VGPU_RESOURCE and t.gpu_memory:
            limits[VGPU_MEMORY] = str(t.gpu_memory)  # per vGPU, as Volcano's device plugin reads it
        return limits

    @property
    def node_selector(self) -> dict[str, str]:
        selector = dict(self.request.template.node_selector)
        if self.request.gpu_type:
            selector[self.settings.gpu_product_label] = self.request.gpu_type
        return selector

    @property
    def tolerations(self) -> list[dict[str, Any]]:
        tolerations = [dict(t) for t in self.request.template.tolerations]
        if self.request.resources.gpus:
            tolerations += [dict(t) for t in self.settings.gpu_tolerations if t not in tolerations]
        return tolerations

    @property
    def node_affinity_required(self) -> list[dict[str, Any]]:
        """One node-selector term (terms are ORed, expressions ANDed): the pool; no GPU node for CPU work."""
        expressions = []
        pool = self.request.project.node_pool
        if pool:
            expressions.append({"key": self.settings.node_pool_label, "operator": "In", "values": [pool]})
        if not self.request.resources.gpus and self.settings.cpu_workspaces_off_gpu_nodes:
            expressions.append({"key": self.settings.gpu_node_label, "operator": "DoesNotExist"})
        return [{"matchExpressions": expressions}] if expressions else []

    @property
    def labels(self) -> dict[str, str]:
        r = self.request
        return {
            f"{LABEL_PREFIX}/user": safe_segment(r.user),
            f"{LABEL_PREFIX}/project": r.project.name,
            f"{LABEL_PREFIX}/template": r.template.slug,
            f"{LABEL_PREFIX}/template-version": str(r.template.version),
        }

    @property
    def annotations(self) -> dict[str, str]:
        annotations = {
            RESOURCES_ANNOTATION: json.dumps(self.request.resources.to_dict(), sort_keys=True),
            HOLDER_ANNOTATION: self.holder,
        }
        if self.volcano_scheduler:
            annotations[VOLCANO_QUEUE_ANNOTATION] = self.request.project.queue
        return annotations

    # -- storage ----------------------------------------------------------------------------
    @property
    def claim_volumes(self) -> dict[str, str]:
        """Pod volume name -> claim: one volume per distinct claim, however many kinds it serves."""
        names: dict[str, str] = {}
        for volume in self.volumes:
            if volume.source not in names.values():
                names[f"lavahub-{volume.kind}"] = volume.source
        return names

    def _volume_name(self, claim: str) -> str:
        return next(name for name, c in self.claim_volumes.items() if c == claim)

    @property
    def pod_volumes(self) -> list[dict[str, Any]]:
        return [
            {"name": name, "persistentVolumeClaim": {"claimName": claim}}
            for name, claim in self.claim_volumes.items()
        ]

    @property
    def volume_mounts(self) -> list[dict[str, Any]]:
        return [
            {
                "name": self._volume_name(v.source),
                "mountPath": v.mount_path,
                "subPath": v.sub_path,
                "readOnly": v.read_only,
            }
            for v in self.volumes
        ]

    @property
    def init_container(self) -> dict[str, Any]:
        """Creates missing directories with the workspace's owner and mode; never touches existing ones."""
        uid, gid = self.storage.uid, self.storage.gid
        steps = []
        for v in self.volumes:
            path = shlex.quote(f"{INIT_MOUNT}/{self._volume_name(v.source)}/{v.sub_path}")
            create = f"mkdir -p {path} && chown {uid}:{gid} {path} && chmod {MODES[v.kind]} {path}"
            steps.append(f"[ -d {path} ] || {{ {create}; }}")
        return {
            "name": "lavahub-storage",
            "image": self.settings.init_image,
            "command": ["sh", "-ec", "\n".join(steps)],
            "securityContext": {"runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False},
            "volumeMounts": [
                {"name": name, "mountPath": f"{INIT_MOUNT}/{name}"} for name in self.claim_volumes
            ],
            "resources": {
                "requests": {"cpu": "10m", "memory": "16Mi"},
                "limits": {"cpu": "100m", "memory": "64Mi"},
            },
        }

    # -- KubeSpawner ------------------------------------------------------------------------
    def spawner_traits(self) -> dict[str, Any]:
        """KubeSpawner trait values for this workspace (no `kubespawner_override` involved)."""
        r = self.request.resources
        home = self.storage.home_mount
        return {
            "image": self.request.template.image,
            "cpu_guarantee": r.cpus,
            "cpu_limit": r.cpus,
            "mem_guarantee": r.memory,
            "mem_limit": r.memory,
            "extra_resource_guarantees": self.extra_resources,
            "extra_resource_limits": self.extra_resources,
            "node_selector": self.node_selector,
            "tolerations": self.tolerations,
            "node_affinity_required": self.node_affinity_required,
            "volumes": self.pod_volumes,
            "volume_mounts": self.volume_mounts,
            "init_containers": [self.init_container],
            "environment": dict(self.env),
            "extra_labels": self.labels,
            "extra_annotations": self.annotations,
            "uid": self.storage.uid,
            "gid": self.storage.gid,
            "fs_gid": self.storage.gid,
            "working_dir": home,
            "notebook_dir": home,
            **({"scheduler_name": self.volcano_scheduler} if self.volcano_scheduler else {}),
        }


def plan_kube_workspace(
    request: WorkspaceRequest,
    *,
    holder: str,
    storage: KubernetesStorage,
    settings: KubernetesConfig,
    volcano_scheduler: str | None = None,
) -> KubeWorkspacePlan:
    volumes = kube_volume_plan(request.user, request.project.name, admin=request.admin, storage=storage)
    env = workspace_env(request, volumes)
    env.update(
        CPU_LIMIT=format_cpus(request.resources.cpus),
        MEM_LIMIT=str(request.resources.memory),
        LAVAHUB_MEMORY=format_memory(request.resources.memory),
    )
    if not request.resources.gpus:
        # without this an image built on CUDA sees every GPU of a node it lands on
        env["NVIDIA_VISIBLE_DEVICES"] = "none"
    return KubeWorkspacePlan(
        request=request,
        holder=holder,
        volumes=volumes,
        settings=settings,
        storage=storage,
        env=env,
        volcano_scheduler=volcano_scheduler,
    )


def pod_resources(annotations: Mapping[str, str] | None) -> Resources | None:
    """What a workspace pod counts against its project's quota, from its annotation."""
    raw = (annotations or {}).get(RESOURCES_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Resources(
            cpus=float(data["cpus"]), memory=parse_memory(data["memory"]), gpus=int(data["gpus"])
        )
    except (ValueError, KeyError, TypeError):
        return None

"""Image templates: the record, and its validation in one place.

The config's seed list, the template store and (later) the templates service
all go through `template_from_dict`, so a template is checked the same way
wherever it comes from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import checks
from .names import ENV_PATTERN, SLUG_PATTERN, SLUG_RULE
from .resources import Resources, format_memory

# registry/path/name[:tag][@sha256:digest], as the Docker reference grammar allows.
IMAGE_PATTERN = re.compile(
    # a first component is a registry only with a dot, a port, or as localhost (as Docker reads it)
    r"^(?:(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+(?::[0-9]+)?|[a-zA-Z0-9-]+:[0-9]+|localhost)/)?"
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
IMAGE_RULE = "an image reference such as quay.io/jupyter/scipy-notebook:2025-01-06"
# GPU model names as Kubernetes labels carry them (nvidia.com/gpu.product values).
GPU_MODEL_PATTERN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
GPU_MODEL_RULE = "a GPU product label such as NVIDIA-A100-SXM4-80GB"
VGPU_RESOURCE = "volcano.sh/vgpu-number"  # Volcano's shared GPUs; memory per vGPU in volcano.sh/vgpu-memory
GPU_RESOURCE_PATTERN = re.compile(r"^[a-z0-9.-]+/[a-z0-9][a-z0-9._-]*$")

# Variables lavahub or JupyterHub set; a template may not override them.
RESERVED_ENV_PREFIXES = ("LAVAHUB_", "JUPYTERHUB_", "JPY_")
RESERVED_ENV = frozenset({"CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "HOME", "USER"})

FIELDS = (
    "slug", "display_name", "description", "image", "cpus", "memory", "gpus",
    "max_cpus", "max_memory", "max_gpus", "gpu_types", "gpu_resource", "gpu_memory", "projects",
    "env", "node_selector", "tolerations", "enabled",
)  # fmt: skip


@dataclass(frozen=True)
class Template:
    """An admin-managed image template: what a workspace runs and may ask for."""

    slug: str
    display_name: str
    image: str
    description: str = ""
    cpus: float = 1.0
    memory: int = 2 * 2**30
    gpus: int = 0
    max_cpus: float = 1.0
    max_memory: int = 2 * 2**30
    max_gpus: int = 0
    gpu_types: tuple[str, ...] = ()
    gpu_resource: str = "nvidia.com/gpu"  # or a MIG profile, or Volcano's volcano.sh/vgpu-number
    gpu_memory: int = 0  # MiB of device memory per vGPU (volcano.sh/vgpu-memory); 0: whole GPUs
    projects: tuple[str, ...] = ()  # empty: every project may use it
    env: Mapping[str, str] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    enabled: bool = True
    version: int = 0  # set by the store; 0 for a template not stored yet

    def allows_project(self, project: str) -> bool:
        return not self.projects or project in self.projects

    @property
    def defaults(self) -> Resources:
        return Resources(cpus=self.cpus, memory=self.memory, gpus=self.gpus)

    def to_dict(self) -> dict[str, Any]:
        """The config / API shape (memory as `8Gi`), without the store's version."""
        out = asdict(self)
        out.pop("version")
        out["memory"] = format_memory(self.memory)
        out["max_memory"] = format_memory(self.max_memory)
        out["gpu_types"] = list(self.gpu_types)
        out["projects"] = list(self.projects)
        out["tolerations"] = [dict(t) for t in self.tolerations]
        out["env"] = dict(self.env)
        out["node_selector"] = dict(self.node_selector)
        return out

    def with_version(self, version: int) -> Template:
        return replace(self, version=version)


def template_from_dict(
    data: Any, path: str = "template", *, known_projects: set[str] | None = None
) -> Template:
    """Validate one template mapping; every error names its field."""
    data = checks.mapping(data, path)
    checks.no_unknown_keys(data, FIELDS, path)
    at = lambda key: checks.where(path, key)  # noqa: E731

    for required in ("slug", "image"):
        if required not in data:
            raise checks.fail(at(required), "is required")
    slug = checks.string(data["slug"], at("slug"), pattern=SLUG_PATTERN, rule=SLUG_RULE)
    image = checks.string(data["image"], at("image"), pattern=IMAGE_PATTERN, rule=IMAGE_RULE)
    display_name = checks.string(data.get("display_name", slug), at("display_name"))
    description = checks.string(data.get("description", ""), at("description"), allow_empty=True)

    cpus = checks.number(data.get("cpus", 1), at("cpus"))
    memory = checks.memory(data.get("memory", "2Gi"), at("memory"))
    gpus = checks.whole(data.get("gpus", 0), at("gpus"))
    max_cpus = checks.number(data.get("max_cpus", cpus), at("max_cpus"))
    max_memory = checks.memory(data.get("max_memory", data.get("memory", "2Gi")), at("max_memory"))
    max_gpus = checks.whole(data.get("max_gpus", gpus), at("max_gpus"))
    for key, default, maximum, shown in (
        ("cpus", cpus, max_cpus, data.get("max_cpus")),
        ("memory", memory, max_memory, data.get("max_memory")),
        ("gpus", gpus, max_gpus, data.get("max_gpus")),
    ):
        if default > maximum:
            raise checks.fail(at(key), f"the default is above max_{key} ({shown})")

    gpu_types = checks.string_list(
        data.get("gpu_types"), at("gpu_types"), pattern=GPU_MODEL_PATTERN, rule=GPU_MODEL_RULE
    )
    if gpu_types and max_gpus == 0:
        raise checks.fail(at("gpu_types"), "names GPU models but max_gpus is 0")
    gpu_resource = checks.string(
        data.get("gpu_resource", "nvidia.com/gpu"),
        at("gpu_resource"),
        pattern=GPU_RESOURCE_PATTERN,
        rule="an extended resource name such as nvidia.com/gpu",
    )
    gpu_memory = checks.whole(data.get("gpu_memory", 0), at("gpu_memory"))
    if gpu_memory and gpu_resource != VGPU_RESOURCE:
        raise checks.fail(
            at("gpu_memory"), f"applies to shared GPUs only: set gpu_resource to {VGPU_RESOURCE}"
        )
    projects = checks.string_list(data.get("projects"), at("projects"), pattern=SLUG_PATTERN, rule=SLUG_RULE)
    if known_projects is not None:
        for i, project in enumerate(projects):
            if project not in known_projects:
                raise checks.fail(checks.where(at("projects"), i), f"no project named {project!r} exists")

    env = _env(data.get("env"), at("env"))
    node_selector = {
        checks.string(k, at("node_selector")): checks.string(v, checks.where(at("node_selector"), k))
        for k, v in checks.mapping(data.get("node_selector"), at("node_selector")).items()
    }
    tolerations_raw = data.get("tolerations") or []
    if not isinstance(tolerations_raw, list):
        raise checks.fail(at("tolerations"), "must be a list of Kubernetes tolerations")
    tolerations = tuple(
        dict(checks.mapping(t, checks.where(at("tolerations"), i))) for i, t in enumerate(tolerations_raw)
    )
    enabled = checks.boolean(data.get("enabled", True), at("enabled"))

    return Template(
        slug=slug, display_name=display_name, image=image, description=description,
        cpus=cpus, memory=memory, gpus=gpus, max_cpus=max_cpus, max_memory=max_memory,
        max_gpus=max_gpus, gpu_types=tuple(gpu_types), gpu_resource=gpu_resource, gpu_memory=gpu_memory,
        projects=tuple(projects), env=env, node_selector=node_selector,
        tolerations=tolerations, enabled=enabled,
    )  # fmt: skip


def _env(value: Any, path: str) -> dict[str, str]:
    env = {}
    for key, val in checks.mapping(value, path).items():
        key_path = checks.where(path, str(key))
        checks.string(key, key_path, pattern=ENV_PATTERN, rule="letters, digits and '_'")
        if key in RESERVED_ENV or key.startswith(RESERVED_ENV_PREFIXES):
            raise checks.fail(key_path, "is set by lavahub and cannot be overridden")
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise checks.fail(key_path, f"must be a string, got {val!r}")
        env[key] = str(val)
    return env

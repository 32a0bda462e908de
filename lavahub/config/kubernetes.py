"""`kubernetes`: where workspaces run on the cluster, and how GPU and node-pool choices place them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field

from spawner.names import LABEL_KEY_PATTERN, LABEL_KEY_RULE
from spawner.templates import IMAGE_PATTERN, IMAGE_RULE

from .fields import Flag, OptionalPositive, Section, Slug, matching, pattern_schema

LabelKey = Annotated[str, pattern_schema(LABEL_KEY_PATTERN), matching(LABEL_KEY_PATTERN, LABEL_KEY_RULE)]
Image = Annotated[str, pattern_schema(IMAGE_PATTERN), matching(IMAGE_PATTERN, IMAGE_RULE)]
DEFAULT_GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


class KubernetesConfig(Section):
    """Where workspaces run on the cluster and how GPU and node-pool choices become scheduling."""

    namespace: Slug = Field("lavahub", description="The namespace of the workspaces' pods.")
    gpu_product_label: LabelKey = Field(
        "nvidia.com/gpu.product", description="A chosen GPU model selects nodes by this node label."
    )
    gpu_node_label: LabelKey = Field(
        "nvidia.com/gpu.present", description="Nodes with this label are GPU nodes."
    )
    node_pool_label: LabelKey = Field(
        "lavahub.io/node-pool", description="A project's node_pool selects nodes by this node label."
    )
    cpu_workspaces_off_gpu_nodes: Flag = Field(
        True, description="Keep workspaces without GPUs off GPU nodes (gpu_node_label)."
    )
    gpu_tolerations: tuple[Mapping[str, Any], ...] = Field(
        DEFAULT_GPU_TOLERATIONS, description="Kubernetes tolerations every workspace with GPUs gets."
    )
    init_image: Image = Field(
        "busybox:1.36", description="The init container's image: it creates missing storage directories."
    )
    start_timeout: OptionalPositive = Field(
        None,
        description="The top-level start_timeout under its former name; given, it is used instead "
        "(giving both with different values is refused).",
    )

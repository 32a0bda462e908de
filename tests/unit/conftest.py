"""Records the unit tests build from, so each test names only what it changes."""

from __future__ import annotations

import pytest

from spawner.projects import Project
from spawner.resources import Quota
from spawner.templates import template_from_dict


@pytest.fixture
def projects() -> dict[str, Project]:
    return {
        "default": Project("default", ("alice", "bob"), Quota(gpus=2, cpus=8, memory=32 * 2**30)),
        "vision": Project("vision", ("alice",), Quota(gpus=4)),
    }


@pytest.fixture
def templates():
    return [
        template_from_dict(
            {"slug": "python", "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
             "cpus": 1, "memory": "2Gi", "max_cpus": 4, "max_memory": "8Gi"}
        ),
        template_from_dict(
            {"slug": "pytorch", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06",
             "cpus": 2, "memory": "4Gi", "gpus": 1, "max_gpus": 2, "max_cpus": 8, "max_memory": "16Gi",
             "gpu_types": ["NVIDIA-A100-SXM4-80GB"], "projects": ["vision"]}
        ),
        template_from_dict(
            {"slug": "retired", "image": "python:3.11", "enabled": False}
        ),
    ]  # fmt: skip

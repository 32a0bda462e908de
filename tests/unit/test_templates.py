import pytest

from spawner.errors import ConfigError
from spawner.templates import template_from_dict

IMAGE = "quay.io/jupyter/scipy-notebook:2025-01-06"


def test_defaults_and_round_trip():
    template = template_from_dict({"slug": "py", "image": IMAGE, "memory": "4Gi", "max_memory": "8Gi"})
    assert template.display_name == "py"
    assert (template.cpus, template.max_cpus, template.gpus, template.max_gpus) == (1, 1, 0, 0)
    assert template.memory == 4 * 2**30
    assert template.enabled and template.allows_project("anything")
    again = template_from_dict(template.to_dict())
    assert again == template


@pytest.mark.parametrize(
    "image",
    ["python:3.11", "quay.io/jupyter/base-notebook", "registry:5000/team/img:v1.2",
     "ghcr.io/org/img@sha256:" + "a" * 64],
)  # fmt: skip
def test_image_references_accepted(image):
    assert template_from_dict({"slug": "x", "image": image}).image == image


@pytest.mark.parametrize("image", ["UPPER/case", "img:", "a b", "img;rm -rf /", "-leading"])
def test_bad_image_references_refused(image):
    with pytest.raises(ConfigError, match="image"):
        template_from_dict({"slug": "x", "image": image})


def test_project_restriction():
    template = template_from_dict({"slug": "x", "image": IMAGE, "projects": ["vision"]})
    assert template.allows_project("vision")
    assert not template.allows_project("default")


@pytest.mark.parametrize("key", ["CUDA_VISIBLE_DEVICES", "JUPYTERHUB_API_TOKEN", "HOME", "LAVAHUB_X"])
def test_reserved_environment_cannot_be_set(key):
    with pytest.raises(ConfigError, match="cannot be overridden"):
        template_from_dict({"slug": "x", "image": IMAGE, "env": {key: "1"}})


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match=r"template.max_gpu: unknown key"):
        template_from_dict({"slug": "x", "image": IMAGE, "max_gpu": 1})

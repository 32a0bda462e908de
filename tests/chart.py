"""The Helm chart (helm/lavahub) as the tests load and render it: with Helm's own SDK (helm-python-sdk,
which embeds Helm 4), never a hand-made imitation of Helm's templating."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "helm" / "lavahub"
EXAMPLES = CHART / "examples"


def helm() -> Any:
    """helm_python, quiet; fails with how to get it when it is missing."""
    try:
        import helm_python
    except ImportError:
        pytest.fail("helm-python-sdk is not installed: `make install` installs the test dependencies")
    helm_python.disable_logging()
    return helm_python


@functools.cache
def chart() -> Any:
    return helm().Chart.load(CHART)


def example(name: str) -> dict[str, Any]:
    """helm/lavahub/examples/<name>.yaml"""
    values: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return values


def full_values() -> dict[str, Any]:
    return example("full")


def render(
    values: dict[str, Any] | None = None, *, release: str = "lavahub", namespace: str = "lavahub"
) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` gives them (Helm checks the values against
    values.schema.json first)."""
    rendered: dict[str, str] = chart().render(
        values or {}, name=release, namespace=namespace, is_install=True
    )
    return rendered


def objects(values: dict[str, Any] | None = None, **where: str) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders for `values`."""
    found: list[dict[str, Any]] = []
    for path, text in render(values, **where).items():
        if path.endswith(".txt"):
            continue
        found.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return found


def notes(values: dict[str, Any] | None = None, **where: str) -> str:
    return next(text for path, text in render(values, **where).items() if path.endswith("NOTES.txt"))


def one(found: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matching = [o for o in found if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matching) == 1, f"{len(matching)} {kind} named {name}"
    return matching[0]

"""`lavahub templates list|export|import` as an admin runs them: real process, real database."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from spawner.store import TemplateStore
from tests.unit.test_cli import LAVAHUB


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "lavahub.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\n")
    return path


def templates(config, *args, stdin=None):
    return subprocess.run(
        [LAVAHUB, "templates", *args, "--config", str(config)],
        input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def store_of(config) -> TemplateStore:
    return TemplateStore(f"sqlite:///{config.parent / 'data' / 'lavahub.sqlite'}")


def test_export_then_import_changes_nothing(config):
    exported = templates(config, "export")
    assert exported.returncode == 0, exported.stderr
    assert [t["slug"] for t in yaml.safe_load(exported.stdout)["templates"]] == ["python", "pytorch"]
    before = [(t.slug, t.version) for t in store_of(config).list()]
    imported = templates(config, "import", "-", stdin=exported.stdout)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == "added 0, changed 0, 2 unchanged\n"
    assert [(t.slug, t.version) for t in store_of(config).list()] == before


def test_import_adds_and_changes_with_a_version_and_author(config):
    catalogue = yaml.safe_load(templates(config, "export").stdout)
    catalogue["templates"][0]["max_cpus"] = 3
    catalogue["templates"].append({"slug": "r-lang", "image": "quay.io/jupyter/r-notebook:2025-01-06"})
    dry = templates(config, "import", "-", "--dry-run", stdin=yaml.safe_dump(catalogue))
    assert dry.stdout == "would add 1 (r-lang), would change 1 (python), 1 unchanged\n"
    assert store_of(config).get("r-lang") is None, "a dry run writes nothing"

    done = templates(config, "import", "-", "--author", "dana", stdin=yaml.safe_dump(catalogue))
    assert done.returncode == 0 and done.stdout == "added 1 (r-lang), changed 1 (python), 1 unchanged\n"
    store = store_of(config)
    python = store.get("python")
    assert python is not None and python.max_cpus == 3 and python.version == 2
    assert store.history("python")[-1]["author"] == "dana"
    listed = templates(config, "list").stdout.splitlines()
    assert listed[0].split() == ["SLUG", "VERSION", "ENABLED", "PROJECTS", "IMAGE"]
    assert listed[1].split()[:4] == ["python", "2", "yes", "all"]


def test_an_invalid_import_names_every_error_and_writes_nothing(config, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump([
        {"slug": "fine", "image": "python:3.11"},
        {"slug": "Bad", "image": "python:3.11"},
        {"slug": "gpu", "image": "python:3.11", "gpus": 2, "max_gpus": 1},
        {"slug": "fine", "image": "python:3.12"},
    ]))  # fmt: skip
    result = templates(config, "import", str(bad))
    assert result.returncode == 2 and result.stdout == ""
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"lavahub: error: {bad}: templates[1].slug: 'Bad' is not valid")
    assert errors[1].startswith(f"lavahub: error: {bad}: templates[2].gpus: the default is above max_gpus")
    assert errors[2] == f"lavahub: error: {bad}: templates[3].slug: 'fine' is also templates[0]"
    assert errors[3] == "lavahub: nothing imported (3 errors)"
    assert store_of(config).get("fine") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [("templates: {}", "templates: must be a list"), ("[unclosed", "is not valid YAML")],
)
def test_unreadable_imports_are_one_line(config, text, message):
    result = templates(config, "import", "-", stdin=text)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr

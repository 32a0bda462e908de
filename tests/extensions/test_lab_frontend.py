"""The lab extension's frontend as `make install` built it: its logic's tests, its API types, its build.

The frontend's pure logic is tested with Node's own test runner
(`extensions/lavahub-jupyter/tests-js`); its TypeScript types of the jobs API
must be what `openapi-typescript` makes of the service's document today.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from services.jobs.openapi import openapi

LAB = Path(__file__).resolve().parents[2] / "extensions" / "lavahub-jupyter"
BUILT = LAB / "lavahub_jupyter" / "labextension"
NODE = shutil.which("node")

needs_build = pytest.mark.skipif(
    NODE is None or not (LAB / "node_modules").is_dir() or not (LAB / "lib").is_dir(),
    reason="the lab extension is not built here: `make install` builds it (Node and jlpm)",
)


@needs_build
def test_the_frontend_logic() -> None:
    done = subprocess.run(
        [NODE or "node", "--experimental-default-type=module", "--test", "tests-js/"],
        cwd=LAB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout


@needs_build
def test_the_api_types_are_the_services_document(tmp_path: Path) -> None:
    document = tmp_path / "jobs-openapi.json"
    document.write_text(json.dumps(openapi("/services/jobs/"), indent=1))
    made = tmp_path / "jobs-api.d.ts"
    done = subprocess.run(
        [str(LAB / "node_modules" / ".bin" / "openapi-typescript"), str(document), "--output", str(made)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert made.read_text() == (LAB / "src" / "jobs-api.d.ts").read_text(), (
        "src/jobs-api.d.ts is out of date with the jobs API: run `make lab-types`"
    )


@needs_build
def test_the_built_extension_declares_its_plugin_and_toolbar_button() -> None:
    package = json.loads((BUILT / "package.json").read_text())
    assert package["name"] == "lavahub-jupyter" and package["jupyterlab"]["_build"]["load"]
    schema = json.loads((BUILT / "schemas" / "lavahub-jupyter" / "plugin.json").read_text())
    (button,) = schema["jupyter.lab.toolbars"]["Cell"]
    assert button["command"] == "lavahub:run-cell-as-job"

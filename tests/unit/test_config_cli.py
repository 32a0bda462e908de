"""`lavahub config check|schema`: real process, real exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.test_cli import lavahub

EXAMPLE = Path(__file__).resolve().parents[2] / "lavahub.example.yaml"


def test_check_a_valid_config():
    result = lavahub("config", "check", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{EXAMPLE}: ok (backend local, 2 projects, 5 templates)\n"


def test_check_an_invalid_config_is_one_line_with_status_2(tmp_path):
    bad = tmp_path / "lavahub.yaml"
    bad.write_text("jobs:\n  ray:\n    dashboard_port: 70000\n")
    result = lavahub("config", "check", str(bad))
    assert (result.returncode, result.stdout) == (2, "")
    assert (
        result.stderr
        == "lavahub: error: lavahub.yaml: jobs.ray.dashboard_port: must be a TCP port (1-65535), got 70000\n"
    )


def test_check_a_missing_file(tmp_path):
    result = lavahub("config", "check", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def every_property(schema: dict, defs: dict, path: str = ""):
    """(key path, property schema) of every key, following $refs into the sections."""
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        ref = prop.get("$ref") or next((a["$ref"] for a in prop.get("anyOf", []) if "$ref" in a), None)
        if ref:
            yield from every_property(defs[ref.rsplit("/", 1)[-1]], defs, f"{path}{name}.")


def test_schema_describes_every_key():
    result = lavahub("config", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    keys = dict(every_property(schema, schema["$defs"]))
    assert {
        "backend",
        "start_timeout",
        "jobs.ray.port",
        "jobs.ray.start_timeout",
        "storage.kubernetes.uid",
    } <= set(keys)
    undescribed = [key for key, prop in keys.items() if not prop.get("description")]
    assert undescribed == []
    assert schema["additionalProperties"] is False
    assert keys["port"]["maximum"] == 65535 and keys["port"]["default"] == 8000
    assert keys["backend"]["enum"] == ["local", "kubernetes"]
    assert keys["kubernetes.namespace"]["pattern"].startswith("^[a-z0-9]")
    assert keys["templates"]["items"]["required"] == ["slug", "image"]


def test_a_reader_that_stops_early_is_no_error():
    import subprocess

    from tests.unit.test_cli import LAVAHUB

    schema = subprocess.Popen([LAVAHUB, "config", "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert schema.stdout is not None and schema.stderr is not None
    assert schema.stdout.read(10).startswith(b"{")
    schema.stdout.close()  # as `| head -c 10` does
    assert schema.wait(30) == 0
    assert schema.stderr.read() == b""

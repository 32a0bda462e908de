"""The `lavahub` console script as a user runs it: real process, real exit codes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

LAVAHUB = str(Path(sys.executable).with_name("lavahub"))


def lavahub(*args, env=None, tmp_path=None):
    environment = {**os.environ, **(env or {})}
    environment.pop("LAVAHUB_CONFIG", None)
    if tmp_path is not None:
        environment["XDG_DATA_HOME"] = str(tmp_path)
    return subprocess.run([LAVAHUB, *args], capture_output=True, text=True, env=environment, timeout=60)


def test_help_lists_commands():
    result = lavahub("--help")
    assert result.returncode == 0
    assert "up" in result.stdout and "render-workspace" in result.stdout
    assert lavahub("render-workspace", "--help").returncode == 0


def test_render_workspace_local(tmp_path):
    result = lavahub("render-workspace", "--user", "alice", "--project", "vision", "--template", "pytorch",
                     "--cpus", "3", tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["backend"] == "local"
    assert shown["template"]["slug"] == "pytorch"
    assert shown["resources"] == {"cpus": 3.0, "memory": "4Gi", "gpus": 0}
    assert shown["working_dir"] == str(tmp_path / "lavahub/users/alice")
    assert shown["environment"]["LAVAHUB_PROJECT_DIR"] == str(tmp_path / "lavahub/projects/vision")
    assert shown["command"][0].endswith("jupyterhub-singleuser")
    assert not (tmp_path / "lavahub").exists(), "rendering must not create anything"


TOO_MANY_GPUS = ["--user", "alice", "--project", "vision", "--template", "pytorch", "--gpus", "5"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "bob", "--project", "vision"], "bob is not a member of project 'vision'"),
        (["--user", "alice", "--template", "pytorch"], "not available in project 'default'"),
        (["--user", "alice", "--template", "gone"], "Unknown template 'gone'"),
        (
            ["--user", "alice", "--project", "vision", "--template", "pytorch", "--gpus", "5"],
            "at most 1 GPUs",
        ),
        (["--backend", "kubernetes", *TOO_MANY_GPUS], "at most 1 GPUs"),
    ],
)
def test_render_refusals_are_one_line_with_status_2(tmp_path, args, message):
    result = lavahub("render-workspace", *args, tmp_path=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_render_gpus_on_a_machine_without_them(tmp_path):
    import spawner.gpus

    if spawner.gpus.inventory():
        pytest.skip("this machine has NVIDIA GPUs; the no-GPU refusal cannot happen here")
    result = lavahub("render-workspace", "--user", "alice", "--project", "vision", "--template", "pytorch",
                     "--gpus", "1", tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "this machine has no NVIDIA GPU" in result.stderr


def test_render_reads_the_template_store_once_the_platform_has_run(tmp_path):
    from dataclasses import replace

    from lavahub.config import load_config
    from spawner.store import TemplateStore

    config_file = tmp_path / "lavahub.yaml"
    config_file.write_text(f"data_dir: {tmp_path / 'data'}\n")
    config = load_config(config_file)
    store = TemplateStore(config.database_url)
    store.seed(config.templates)
    store.put(replace(config.templates[0], max_cpus=16), author="admin")
    result = lavahub("render-workspace", "--config", str(config_file), "--user", "bob", "--cpus", "6")
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["template"]["version"] == 2


@pytest.mark.parametrize("command", ["up", "render-workspace"])
def test_invalid_config_is_one_line(tmp_path, command):
    bad = tmp_path / "lavahub.yaml"
    bad.write_text("templates:\n  - slug: x\n    image: python:3.11\n    max_gpus: two\n")
    extra = ["--user", "alice"] if command == "render-workspace" else []
    result = lavahub(command, "--config", str(bad), *extra)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "lavahub: error: lavahub.yaml: templates[0].max_gpus: must be a whole number >= 0, got 'two'"
    )


EXAMPLE = Path(__file__).resolve().parents[2] / "lavahub.example.yaml"


def test_render_kubernetes_prints_a_valid_pod_with_mounts_init_gpus_and_labels(tmp_path):
    import kubernetes_validate

    config = tmp_path / "lavahub.yaml"  # the example, with a data dir (and template store) of its own
    config.write_text(
        yaml.safe_dump({**yaml.safe_load(EXAMPLE.read_text()), "data_dir": str(tmp_path / "d")})
    )
    result = lavahub(
        "render-workspace", "--config", str(config), "--backend", "kubernetes", "--user", "alice",
        "--project", "vision", "--template", "pytorch", "--gpus", "2", "--gpu-type", "NVIDIA-A100-SXM4-80GB",
        env={"KUBECONFIG": str(tmp_path / "none")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    pod = yaml.safe_load(result.stdout)
    kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)
    (notebook,) = pod["spec"]["containers"]
    assert {m["mountPath"]: (m["subPath"], m["readOnly"]) for m in notebook["volumeMounts"]} == {
        "/home/jovyan": ("users/alice", False),
        "/mnt/projects/vision": ("projects/vision", False),
        "/mnt/global": ("global", True),
    }
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["lavahub-storage"]
    assert notebook["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["metadata"]["labels"]["lavahub.io/template"] == "pytorch"
    assert pod["metadata"]["labels"]["lavahub.io/project"] == "vision"
    assert pod["spec"]["securityContext"]["fsGroup"] == 100
    assert notebook["securityContext"]["runAsUser"] == 1000
    assert not (tmp_path / "none").exists()


def test_render_kubernetes_refuses_more_gpus_than_the_quota_in_one_line(tmp_path):
    config = tmp_path / "lavahub.yaml"
    config.write_text(
        "projects: {vision: {members: [alice], quota: {gpus: 2}}}\n"
        "templates: [{slug: big, image: python:3.11, gpus: 1, max_gpus: 8}]\n"
    )
    result = lavahub("render-workspace", "--config", str(config), "--backend", "kubernetes",
                     "--user", "alice", "--gpus", "3", tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "lavahub: error: Project 'vision' has a quota of 2 GPUs; 0 are in use and this workspace asks for 3."
        " (ask for at most 2 GPUs, or stop a running workspace of the project)\n"
    )


def test_db_upgrade_prints_the_transition_and_current_the_revision(tmp_path):
    from tests.unit.test_db import write_old_database

    write_old_database(tmp_path / "data" / "lavahub.sqlite")
    config = tmp_path / "lavahub.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    url = f"sqlite:///{tmp_path / 'data' / 'lavahub.sqlite'}"
    before = lavahub("db", "current", "--config", str(config))
    assert before.stdout == f"lavahub database: 0001, head is 0004; `lavahub db upgrade` gets there ({url})\n"
    upgrade = lavahub("db", "upgrade", "--config", str(config))
    assert upgrade.returncode == 0, upgrade.stderr
    assert upgrade.stdout == f"lavahub database: 0001 -> 0004 ({url})\n"
    again = lavahub("db", "upgrade", "--config", str(config))
    assert again.stdout == f"lavahub database: 0004, up to date ({url})\n"
    assert lavahub("db", "current", "--config", str(config)).stdout == again.stdout

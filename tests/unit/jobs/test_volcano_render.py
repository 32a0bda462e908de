"""The Volcano Job a cell becomes: valid for Volcano's CRD schema and current Kubernetes, placed
as its workspace would be, wired per framework, and named within Kubernetes' limits."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from lavahub_jupyter.runtime.contract import RESULT_MARKER, result_lines
from lavahub_jupyter.runtime.pod import worker_contract

from lavahub.config import parse_config
from services.jobs.backends.volcano.backend import CAPABILITIES
from services.jobs.backends.volcano.podlogs import JobStreams
from services.jobs.backends.volcano.render import FILES_MOUNT, RenderError, render
from services.jobs.models import JobSpec
from services.jobs.spec import Caller, validate_submission
from spawner.errors import PublicError
from spawner.volumes import kube_volume_plan

LAVAHUB = str(Path(sys.executable).parent / "lavahub")
REPO = Path(__file__).resolve().parents[3]
CRDS = REPO.parent / "shared" / "volcano-crds"
CONFIG = {
    "backend": "kubernetes",
    "bind": "0.0.0.0",
    "jobs": {"backend": "volcano"},
    "projects": {
        "vision": {"members": ["alice"], "quota": {"gpus": 8}, "queue": "vision", "node_pool": "a100"},
        "default": {"members": ["alice", "bob"]},
    },
    "templates": [
        {"slug": "pytorch", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06", "gpus": 1,
         "max_gpus": 4, "cpus": 2, "max_cpus": 4, "memory": "8Gi", "max_memory": "16Gi",
         "gpu_types": ["NVIDIA-A100-SXM4-80GB"], "projects": ["vision"]},
        {"slug": "python", "image": "quay.io/jupyter/scipy-notebook:2025-01-06", "cpus": 1, "max_cpus": 2},
    ],
}  # fmt: skip


def crd_schema(name: str) -> dict[str, Any]:
    if not CRDS.is_dir():
        pytest.fail(f"Volcano's CRD schemas are missing: {CRDS} (shared/ lies beside the clone)")
    crd = yaml.safe_load((CRDS / name).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def spec_for(body: dict[str, Any], user: str = "alice") -> JobSpec:
    config = parse_config(CONFIG)
    projects = {n: p for n, p in config.projects.items() if user in p.members}
    project = body.get("project", next(iter(projects)))
    return validate_submission(
        {"code": "print('hi')", **body},
        caller=Caller(user),
        projects=projects,
        templates=list(config.templates),
        limits=config.jobs,
        capabilities=CAPABILITIES,
        capacity=None,
        volumes=kube_volume_plan(user, project, admin=False, storage=config.kubernetes_storage),
        job_id="0123456789abcdef",
    )


def rendered(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    config = parse_config(CONFIG)
    out = render(
        spec_for(body),
        namespace=config.jobs_namespace,
        volcano=config.jobs.volcano,
        settings=config.kubernetes,
        storage=config.kubernetes_storage,
        result_token="t0k3n",
    )
    return out.job, out.files


def assert_valid(job: dict[str, Any], files: dict[str, Any] | None) -> None:
    jsonschema.validate(job, crd_schema("batch.volcano.sh_jobs.yaml"))
    version = kubernetes_validate.latest_version()
    for task in job["spec"]["tasks"]:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, **task["template"]}
        kubernetes_validate.validate(pod, version, strict=True)
        assert len(f"{job['metadata']['name']}-{task['name']}-{task['replicas'] - 1}") <= 63
    if files is not None:
        kubernetes_validate.validate(files, version, strict=True)


PYTORCH = {"project": "vision", "template": "pytorch", "workers": 4, "gpus": 1, "framework": "pytorch"}


def test_a_pytorch_job_is_a_gang_in_its_projects_queue_with_gpus_and_the_three_volumes() -> None:
    job, files = rendered(PYTORCH)
    assert_valid(job, files)
    spec = job["spec"]
    assert (spec["schedulerName"], spec["queue"], spec["minAvailable"]) == ("volcano", "vision", 4)
    assert [(t["name"], t["replicas"]) for t in spec["tasks"]] == [("master", 1), ("worker", 3)]
    assert spec["plugins"]["pytorch"] == ["--master=master", "--worker=worker", "--port=23456"]
    assert {"event": "PodFailed", "action": "AbortJob"} in spec["policies"]
    assert {"event": "PodEvicted", "action": "RestartJob"} in spec["policies"]
    assert spec["maxRetry"] == 3 and spec["ttlSecondsAfterFinished"] == 600
    pod = spec["tasks"][1]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "1"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/home/jovyan"]["subPath"] == "users/alice"
    assert mounts["/mnt/projects/vision"]["subPath"] == "projects/vision"
    assert mounts["/mnt/global"]["readOnly"] is True
    assert mounts[FILES_MOUNT]["readOnly"] is True
    claims = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in pod["volumes"]}
    assert set(claims.values()) >= {"lavahub-home", "lavahub-projects", "lavahub-global"}
    # placed and run as the workspace would be: its uid, node pool, GPU tolerations, no token
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["runAsNonRoot"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["a100"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LAVAHUB_RANK_OFFSET"] == "1" and env["LAVAHUB_WORLD_SIZE"] == "4"
    assert "JUPYTERHUB_API_TOKEN" not in env
    # a small cell travels inside the Job: no ConfigMap, the pods' annotations as files
    assert files is None
    assert spec["tasks"][0]["template"]["metadata"]["annotations"]["lavahub.io/cell"] == "print('hi')"
    volume = next(v for v in pod["volumes"] if v["name"] == "lavahub-job")
    assert volume["downwardAPI"]["items"] == [
        {"path": "code.py", "fieldRef": {"fieldPath": "metadata.annotations['lavahub.io/cell']"}}
    ]


def test_a_cell_too_large_for_the_job_travels_in_a_config_map_and_small_exports_inline() -> None:
    exports = base64.b64encode(b"\x80" * 40_000).decode()  # 40,000 bytes: 53,336 as base64
    job, files = rendered({"project": "default", "template": "python", "exports": exports})
    assert_valid(job, files)
    template = job["spec"]["tasks"][0]["template"]
    assert files is None and template["metadata"]["annotations"]["lavahub.io/exports"] == exports
    items = next(v for v in template["spec"]["volumes"] if v["name"] == "lavahub-job")["downwardAPI"]["items"]
    assert [i["path"] for i in items] == ["code.py", "exports.pkl.b64"]

    large = base64.b64encode(b"\x80" * 60_000).decode()
    job, files = rendered({"project": "default", "template": "python", "exports": large})
    assert_valid(job, files)
    assert files is not None and files["data"]["code.py"] == "print('hi')"
    assert files["binaryData"]["exports.pkl"] == large
    template = job["spec"]["tasks"][0]["template"]
    assert "annotations" not in template["metadata"]
    volume = next(v for v in template["spec"]["volumes"] if v["name"] == "lavahub-job")
    assert volume["configMap"]["name"] == files["metadata"]["name"]


@pytest.mark.parametrize(
    ("framework", "tasks", "plugins"),
    [
        ("python", [("worker", 3)], {"env", "svc"}),
        ("pytorch", [("master", 1), ("worker", 2)], {"pytorch", "env", "svc"}),
        ("mpi", [("mpimaster", 1), ("mpiworker", 3)], {"mpi", "ssh", "env", "svc"}),
        ("ray", [("head", 1), ("worker", 2), ("driver", 1)], {"ray", "env", "svc"}),
    ],
)
def test_each_framework_has_its_tasks_and_plugins(framework, tasks, plugins) -> None:
    job, files = rendered({"workers": 3, "framework": framework, "project": "default", "template": "python"})
    assert_valid(job, files)
    assert [(t["name"], t["replicas"]) for t in job["spec"]["tasks"]] == tasks
    assert set(job["spec"]["plugins"]) == plugins
    ends = [t["name"] for t in job["spec"]["tasks"] if t.get("policies")]
    assert ends == {"mpi": ["mpimaster"], "ray": ["driver"]}.get(framework, [])


def test_an_elastic_job_gangs_its_minimum_and_creates_its_maximum() -> None:
    job, files = rendered({"workers": 4, "min_workers": 2, "project": "default", "template": "python"})
    assert_valid(job, files)
    assert job["spec"]["minAvailable"] == 2
    (task,) = job["spec"]["tasks"]
    assert (task["replicas"], task["minAvailable"]) == (4, 2)


def test_elastic_minimums_are_checked() -> None:
    with pytest.raises(PublicError, match="min_workers must be a whole number from 1 to workers"):
        spec_for({"workers": 2, "min_workers": 3, "project": "default", "template": "python"})


def test_long_and_odd_names_are_shortened_to_valid_names() -> None:
    job, files = rendered({"name": "9_Very.Long-NAME_for_a_training_run_of_resnet", "workers": 8,
                           "framework": "mpi", "project": "default", "template": "python"})  # fmt: skip
    assert_valid(job, files)
    name = job["metadata"]["name"]
    assert name == "job-9-very-long-name-0123456789abcdef"[: len(name)] and name.endswith("0123456789abcdef")
    assert len(name) <= 37 and name[0].isalpha()


def test_a_cell_too_large_for_a_config_map_is_refused_in_words() -> None:
    config = parse_config(CONFIG)
    spec = spec_for({"project": "default", "template": "python", "exports": "QUFB" * 300_000})
    with pytest.raises(RenderError, match="a job on Kubernetes takes at most 1000000"):
        render(spec, namespace="x", volcano=config.jobs.volcano, settings=config.kubernetes,
               storage=config.kubernetes_storage)  # fmt: skip


def test_the_pod_entry_builds_the_contract_from_volcanos_variables() -> None:
    base = {"LAVAHUB_JOB_ID": "j", "LAVAHUB_JOB_DIR": "/home/jovyan/.lavahub/jobs/j",
            "LAVAHUB_WORLD_SIZE": "4", "LAVAHUB_MASTER_ADDR": "m-worker-0.m", "LAVAHUB_MASTER_PORT": "29500"}  # fmt: skip
    python = worker_contract({**base, "VC_TASK_INDEX": "2", "LAVAHUB_RANK_OFFSET": "0"})
    assert (python["RANK"], python["WORLD_SIZE"], python["MASTER_ADDR"]) == ("2", "4", "m-worker-0.m")
    pytorch = worker_contract({**base, "RANK": "3", "WORLD_SIZE": "4", "MASTER_ADDR": "p-master-0.p",
                               "MASTER_PORT": "23456", "VC_TASK_INDEX": "2", "LAVAHUB_RANK_OFFSET": "1"})  # fmt: skip
    assert (pytorch["RANK"], pytorch["MASTER_ADDR"], pytorch["MASTER_PORT"]) == ("3", "p-master-0.p", "23456")


def test_rank_0s_result_lines_are_taken_out_of_its_log(tmp_path) -> None:
    streams = JobStreams("j", tmp_path, "python", "tok", max_result_bytes=1024)
    lines = result_lines(b"\x80\x04K*.", "tok")
    assert streams.result_line("partial " + lines[0]) == "partial "
    assert all(streams.result_line(line) is None for line in lines[1:])
    assert (tmp_path / "result.pkl").read_bytes() == b"\x80\x04K*."
    assert streams.result_line(f"{RESULT_MARKER} other {lines[0].split()[-1]}") is not None  # not its token
    big = JobStreams("k", tmp_path / "k", "python", "tok", max_result_bytes=10)
    for line in result_lines(b"x" * 100, "tok"):
        big.result_line(line)
    assert (tmp_path / "k" / "result.too-large").exists() and not (tmp_path / "k" / "result.pkl").exists()


def test_render_job_prints_a_valid_pytorch_job(tmp_path) -> None:
    (tmp_path / "lavahub.yaml").write_text(yaml.safe_dump({**CONFIG, "data_dir": str(tmp_path / "data")}))
    (tmp_path / "cell.py").write_text("import torch\n")
    run = subprocess.run(
        [LAVAHUB, "render-job", "--config", str(tmp_path / "lavahub.yaml"),
         "--user", "alice", "--project", "vision", "--template", "pytorch", "--workers", "4", "--gpus", "1",
         "--framework", "pytorch", str(tmp_path / "cell.py")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (job,) = yaml.safe_load_all(run.stdout)  # a small cell: the Job alone
    assert_valid(job, None)
    assert job["spec"]["minAvailable"] == 4 and "pytorch" in job["spec"]["plugins"]


def test_render_job_says_what_is_wrong_in_one_line(tmp_path) -> None:
    (tmp_path / "lavahub.yaml").write_text(yaml.safe_dump({**CONFIG, "data_dir": str(tmp_path / "data")}))
    (tmp_path / "cell.py").write_text("x = 1\n")
    run = subprocess.run(
        [LAVAHUB, "render-job", "--config", str(tmp_path / "lavahub.yaml"),
         "--user", "alice", "--workers", "two", str(tmp_path / "cell.py")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert run.stderr.strip().count("\n") == 0 and "--workers must be N or MIN:MAX" in run.stderr
    assert "Traceback" not in run.stderr

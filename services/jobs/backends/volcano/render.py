"""A job spec -> the Volcano Job (and, for a large cell, its files ConfigMap) that runs it. Pure.

Each worker is placed exactly as a workspace from the same template and project
would be: the pod's volumes, GPU limits, node selector, tolerations, node-pool
affinity, environment and uid all come from `spawner.kube_plan`'s plan for one
worker, so a cell runs where and as its notebook does. Only the wiring between
workers (tasks, Volcano's plugins, the rank each pod gets) is decided here.

The cell and its exported variables reach every worker at FILES_MOUNT. Up to
INLINE_MAX bytes they travel inside the Job, as pod annotations that a downward
API volume shows as files: one object to create, so a submission is one request.
A larger cell gets a ConfigMap of its own (up to CONFIG_MAP_MAX), owned by the Job.

`lavahub render-job` prints what this module makes; the tests validate it
against Volcano's CRD schemas and current Kubernetes schemas.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lavahub_jupyter.runtime.contract import CODE_FILE, EXPORTS_B64_FILE, EXPORTS_FILE

from lavahub.config import KubernetesConfig, KubernetesStorage
from lavahub.config.jobs import VolcanoConfig
from spawner.kube_plan import LABEL_PREFIX, KubeWorkspacePlan, plan_kube_workspace
from spawner.names import safe_segment
from spawner.resources import format_cpus, format_memory

from ...models import JobSpec

API_VERSION = "batch.volcano.sh/v1alpha1"
MANAGED_BY = {"app.kubernetes.io/managed-by": "lavahub", f"{LABEL_PREFIX}/component": "job"}
JOB_ID_LABEL = f"{LABEL_PREFIX}/job-id"
FRAMEWORK_LABEL = f"{LABEL_PREFIX}/framework"
CONTAINER = "job"
FILES_VOLUME = "lavahub-job"
FILES_MOUNT = "/mnt/lavahub/job"  # the job's code and exports, read-only, in every worker
ENTRY = ["python", "-P", "-m", "lavahub_jupyter.runtime.pod"]
PYTORCH_PORT = 23456  # the pytorch plugin's default --port
CONFIG_MAP_MAX = 1_000_000  # bytes of data a ConfigMap may hold (etcd's 1 MiB object limit, less room)
INLINE_MAX = 64 * 1024  # bytes of cell and exports (base64) carried in the Job (pod annotations: 256 KiB)
CODE_ANNOTATION = f"{LABEL_PREFIX}/cell"
EXPORTS_ANNOTATION = f"{LABEL_PREFIX}/exports"
DEADLINE_GRACE = 60  # seconds past the job's timeout before the kubelet itself stops a worker
MAX_POD_NAME = 63
NAME_STEM = 20  # characters of the job's own name kept in the Volcano Job's name
_NOT_DNS = re.compile(r"[^a-z0-9-]+")

# framework -> its tasks (name, is the gang's "main" task), plugins; see `tasks()`
PLUGINS: Mapping[str, Mapping[str, list[str]]] = {
    "python": {"env": [], "svc": ["--publish-not-ready-addresses"]},
    "pytorch": {
        "pytorch": ["--master=master", "--worker=worker", f"--port={PYTORCH_PORT}"],
        "env": [],
        "svc": ["--publish-not-ready-addresses"],
    },
    "mpi": {
        "mpi": ["--master=mpimaster", "--worker=mpiworker", "--port=22"],
        "ssh": [],
        "env": [],
        "svc": ["--publish-not-ready-addresses"],
    },
    "ray": {"ray": ["--head=head", "--worker=worker"], "env": [], "svc": ["--publish-not-ready-addresses"]},
}
# a failed worker aborts the gang (no half-run job holds GPUs); a lost node restarts it, up to maxRetry
POLICIES = [{"event": "PodFailed", "action": "AbortJob"}, {"event": "PodEvicted", "action": "RestartJob"}]
ENDS_THE_JOB = [{"event": "TaskCompleted", "action": "CompleteJob"}]  # a driver's end is the job's


class RenderError(Exception):
    """The job cannot become a Volcano Job as asked; the message says why, in plain words."""


@dataclass(frozen=True)
class Worker:
    """What one pod of a job is, as its log prefix and contract rank say it."""

    label: str  # the log prefix's name: worker-0, ray-head, launcher...
    rank: int | None  # its RANK under the contract; None for pods that do not run the cell


def volcano_name(spec: JobSpec) -> str:
    """`<name stem>-<job id>`: unique by the id, readable by the stem, a DNS-1035 label.

    Short enough that every name Volcano derives from it (pods `<job>-<task>-<i>`,
    Services `<job>` and `<job>-head-svc`, ConfigMap `<job>-svc`) stays within 63.
    """
    stem = _NOT_DNS.sub("-", spec.name.lower()).strip("-")[:NAME_STEM].strip("-")
    if not stem or not stem[0].isalpha():
        stem = f"job-{stem}".rstrip("-")[:NAME_STEM].rstrip("-")
    return f"{stem}-{spec.id}"


def files_name(name: str) -> str:
    return f"{name}-files"


def worker_of(framework: str, task: str, index: int) -> Worker:
    """Which worker a pod of `task` (its `index`-th) is: the inverse of `tasks()`."""
    if framework == "pytorch":
        return Worker(f"worker-{index + (task == 'worker')}", index + (task == "worker"))
    if framework == "ray":
        if task == "driver":
            return Worker("worker-0", 0)
        return Worker(f"ray-{task}-{index}" if task == "worker" else "ray-head", None)
    if framework == "mpi":
        return Worker("launcher", None) if task == "mpimaster" else Worker(f"worker-{index}", index)
    return Worker(f"worker-{index}", index)


@dataclass(frozen=True)
class Rendered:
    """The Volcano Job, and the ConfigMap that carries a cell too large to travel inside it."""

    job: dict[str, Any]
    files: dict[str, Any] | None

    @property
    def name(self) -> str:
        return str(self.job["metadata"]["name"])


def render(
    spec: JobSpec,
    *,
    namespace: str,
    volcano: VolcanoConfig,
    settings: KubernetesConfig,
    storage: KubernetesStorage,
    result_token: str = "",
) -> Rendered:
    """The Volcano Job for `spec` in `namespace`, and its files. Raises RenderError."""
    if spec.request is None:
        raise RenderError("the job was stored without its template and project; submit it again")
    name = volcano_name(spec)
    plan = plan_kube_workspace(
        spec.request, holder=f"{spec.user}/job-{spec.id}", storage=storage, settings=settings
    )
    labels = {**plan.labels, **MANAGED_BY, JOB_ID_LABEL: spec.id, FRAMEWORK_LABEL: spec.framework}
    files = _files(spec, name, namespace, labels)
    wiring = _Wiring(name, volcano.master_port, result_token, inline=None if files else _inline(spec))
    tasks = [_task(spec, plan, wiring, t, labels) for t in _task_shapes(spec)]
    for task in tasks:
        longest = f"{name}-{task['name']}-{task['replicas'] - 1}"
        if len(longest) > MAX_POD_NAME:  # cannot happen with NAME_STEM as it is; kept as the rule
            raise RenderError(f"pod name {longest} would be longer than {MAX_POD_NAME} characters")
    job_spec: dict[str, Any] = {
        "schedulerName": volcano.scheduler_name,
        "queue": spec.queue,
        "minAvailable": sum(t.get("minAvailable", t["replicas"]) for t in tasks),
        "maxRetry": volcano.max_retry,
        "ttlSecondsAfterFinished": volcano.ttl_seconds_after_finished,
        "policies": [dict(p) for p in POLICIES],
        "plugins": {k: list(v) for k, v in PLUGINS[spec.framework].items()},
        "tasks": tasks,
    }
    if volcano.priority_class:
        job_spec["priorityClassName"] = volcano.priority_class
    job = {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": plan.annotations},
        "spec": job_spec,
    }
    return Rendered(job=job, files=files)


@dataclass(frozen=True)
class _Wiring:
    """What every pod of one job shares: the Job's name, rank 0's port, the result's token."""

    name: str
    master_port: int
    result_token: str
    inline: Mapping[str, str] | None = None  # the cell's annotations, when it travels in the Job


@dataclass(frozen=True)
class _Shape:
    name: str
    replicas: int
    min_available: int
    runs_cell: bool  # the pod's command is lavahub's entry (else the plugin's or sshd)
    rank_offset: int = 0
    ends_job: bool = False


def _task_shapes(spec: JobSpec) -> list[_Shape]:
    """The tasks of each framework; an elastic job's optional workers are in its last task."""
    n, gang = spec.workers, spec.gang
    if spec.framework == "pytorch":
        shapes = [_Shape("master", 1, 1, True)]
        if n > 1:
            shapes.append(_Shape("worker", n - 1, gang - 1, True, rank_offset=1))
        return shapes
    if spec.framework == "mpi":
        return [_Shape("mpimaster", 1, 1, True, ends_job=True), _Shape("mpiworker", n, gang, False)]
    if spec.framework == "ray":
        shapes = [_Shape("head", 1, 1, False)]
        if n > 1:
            shapes.append(_Shape("worker", n - 1, gang - 1, False))
        return [*shapes, _Shape("driver", 1, 1, True, ends_job=True)]
    return [_Shape("worker", n, gang, True)]


def _task(
    spec: JobSpec,
    plan: KubeWorkspacePlan,
    wiring: _Wiring,
    shape: _Shape,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": shape.name,
        "replicas": shape.replicas,
        "template": {"metadata": {"labels": dict(labels)}, "spec": _pod_spec(spec, plan, wiring, shape)},
    }
    if wiring.inline is not None:
        task["template"]["metadata"]["annotations"] = dict(wiring.inline)
    if shape.min_available != shape.replicas:
        task["minAvailable"] = shape.min_available
    if shape.ends_job:
        task["policies"] = [dict(p) for p in ENDS_THE_JOB]
    return task


def _pod_spec(spec: JobSpec, plan: KubeWorkspacePlan, wiring: _Wiring, shape: _Shape) -> dict[str, Any]:
    storage = plan.storage
    driver = spec.framework == "ray" and shape.name == "driver"
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "env": [{"name": k, "value": v} for k, v in _env(spec, plan, wiring, shape).items()],
        "resources": _resources(plan, small=driver),
        "volumeMounts": [
            *plan.volume_mounts,
            {"name": FILES_VOLUME, "mountPath": FILES_MOUNT, "readOnly": True},
        ],
        "workingDir": spec.cwd,
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    if shape.runs_cell:
        container["command"] = list(ENTRY)
        if spec.framework == "mpi":  # the launcher starts one entry per worker over the plugin's ssh
            hosts = "/etc/volcano/mpiworker.host"
            container["command"] = ["mpirun", "--hostfile", hosts, "-np", str(spec.workers), *ENTRY]
    elif spec.framework == "mpi":
        container["command"] = ["/usr/sbin/sshd", "-D", "-e"]
    # ray's head and workers: the ray plugin sets their command (`ray start --block ...`)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "securityContext": {
            "runAsUser": storage.uid,
            "runAsGroup": storage.gid,
            "fsGroup": storage.gid,
            "runAsNonRoot": storage.uid != 0,
        },
        # no platform credential reaches a job: no service-account token, no service links
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "activeDeadlineSeconds": spec.timeout + DEADLINE_GRACE,
        "terminationGracePeriodSeconds": 10,
        "initContainers": [plan.init_container],
        "containers": [container],
        "volumes": [
            *plan.pod_volumes,
            _files_volume(wiring),
        ],
    }
    if spec.framework == "mpi":  # sshd and mpirun need their own user; the ssh plugin's keys are root's
        pod["securityContext"] = {"fsGroup": storage.gid}
    if plan.node_selector:
        pod["nodeSelector"] = plan.node_selector
    if plan.tolerations:
        pod["tolerations"] = plan.tolerations
    if plan.node_affinity_required:
        pod["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": plan.node_affinity_required
                }
            }
        }
    return pod


def _resources(plan: KubeWorkspacePlan, *, small: bool = False) -> dict[str, dict[str, str]]:
    """Requests equal limits (a guaranteed pod), GPUs as the template's resource."""
    if small:  # a ray driver only talks to the job's own Ray cluster
        amounts = {"cpu": "250m", "memory": "512Mi"}
        return {"requests": dict(amounts), "limits": dict(amounts)}
    r = plan.request.resources
    amounts = {"cpu": format_cpus(r.cpus)} if r.cpus else {}
    if r.memory:
        amounts["memory"] = format_memory(r.memory)
    amounts.update(plan.extra_resources)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _env(spec: JobSpec, plan: KubeWorkspacePlan, wiring: _Wiring, shape: _Shape) -> dict[str, str]:
    """The workspace's environment, the job's own, then what the entry needs to build the contract.

    RANK differs per pod, and a template is shared by a task's pods: the entry adds the
    pod's index (Volcano's env plugin) to LAVAHUB_RANK_OFFSET, unless a plugin set RANK.
    """
    env = {**plan.env, **spec.env}
    name = wiring.name
    master = f"{name}-worker-0.{name}" if spec.framework == "python" else f"{name}-master-0.{name}"
    env.update(
        HOME=plan.storage.home_mount,
        USER=safe_segment(spec.user),
        LAVAHUB_JOB_ID=spec.id,
        LAVAHUB_JOB_DIR=spec.job_dir,
        LAVAHUB_JOB_FILES=FILES_MOUNT,
        LAVAHUB_WORLD_SIZE=str(spec.workers),
        LAVAHUB_RANK_OFFSET=str(shape.rank_offset),
        LAVAHUB_MASTER_ADDR=master,
        LAVAHUB_MASTER_PORT=str(PYTORCH_PORT if spec.framework == "pytorch" else wiring.master_port),
    )
    if spec.framework == "ray":
        env["RAY_ADDRESS"] = f"{name}-head-0.{name}:6379"
    if spec.result and (shape.rank_offset == 0 and shape.runs_cell):
        env["LAVAHUB_RESULT"] = spec.result
        env["LAVAHUB_RESULT_TOKEN"] = wiring.result_token
    return env


def _carried_size(spec: JobSpec) -> int:
    size = len(spec.code.encode())
    if spec.exports is not None:
        size += 4 * -(-len(spec.exports) // 3)  # base64
    return size


def _inline(spec: JobSpec) -> dict[str, str]:
    """The pod annotations that carry a small cell (and its exports, base64) inside the Job."""
    carried = {CODE_ANNOTATION: spec.code}
    if spec.exports is not None:
        carried[EXPORTS_ANNOTATION] = base64.b64encode(spec.exports).decode()
    return carried


def _files_volume(wiring: _Wiring) -> dict[str, Any]:
    """FILES_VOLUME: the pod's own annotations as files (a small cell), or the job's ConfigMap."""
    if wiring.inline is None:
        return {"name": FILES_VOLUME, "configMap": {"name": files_name(wiring.name)}}
    paths = {CODE_ANNOTATION: CODE_FILE, EXPORTS_ANNOTATION: EXPORTS_B64_FILE}
    items = [
        {"path": paths[key], "fieldRef": {"fieldPath": f"metadata.annotations['{key}']"}}
        for key in wiring.inline
    ]
    return {"name": FILES_VOLUME, "downwardAPI": {"items": items}}


def _files(spec: JobSpec, name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any] | None:
    """The ConfigMap every worker mounts at FILES_MOUNT, for a cell too large to travel in the Job."""
    size = _carried_size(spec)
    if size <= INLINE_MAX:
        return None
    if size > CONFIG_MAP_MAX:
        raise RenderError(
            f"the cell and its exported variables are {size} bytes; a job on Kubernetes takes at most "
            f"{CONFIG_MAP_MAX} (they travel in a ConfigMap): save large data to your project "
            "directory and load it in the job"
        )
    files: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": files_name(name), "namespace": namespace, "labels": dict(labels)},
        "data": {CODE_FILE: spec.code},
    }
    if spec.exports is not None:
        files["binaryData"] = {EXPORTS_FILE: base64.b64encode(spec.exports).decode()}
    return files

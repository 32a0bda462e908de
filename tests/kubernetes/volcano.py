"""The tests' stand-in for Volcano's controller and scheduler, through the real API server.

No Volcano runs on the test machines, so `FakeVolcano` does what its job controller and
scheduler do, with the objects, labels, plugin variables, policies and message formats of
Volcano v1.15 (`shared/reference/volcano.md`): a Job gets a PodGroup; the enqueue step
admits PodGroups whose queue has room for their minResources; the controller creates the
pods (`<job>-<task>-<i>`, with the env, svc and pytorch plugins' variables); the allocate
step binds a gang only when all its `minAvailable` pods fit on Ready nodes at once, and
otherwise writes the PodGroup's `Unschedulable` condition and events as Volcano words them.
Pod phases come from a kubelet (`kubelet.py`, `process_kubelet.py`); Job status, policies,
Commands, `ttlSecondsAfterFinished` and garbage collection come from here.

Each round lists everything once (jobs, podgroups, pods, queues, nodes, commands): what a
cycle costs does not grow with the number of calls per object.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import ApiClient, ApiextensionsV1Api, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from services.jobs.backends.volcano.diagnose import quantity
from services.jobs.backends.volcano.kubeapi import merge_patch, raw, read_json

# kubernetes_asyncio's stubs type every request body as its model class; its client sends a
# plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

log = logging.getLogger(__name__)

CRDS = Path(__file__).resolve().parents[3] / "shared" / "volcano-crds"
CRD_FILES = {
    "Job": "batch.volcano.sh_jobs.yaml",
    "Command": "bus.volcano.sh_commands.yaml",
    "PodGroup": "scheduling.volcano.sh_podgroups.yaml",
    "Queue": "scheduling.volcano.sh_queues.yaml",
}
BATCH = ("batch.volcano.sh", "v1alpha1")
BUS = ("bus.volcano.sh", "v1alpha1")
SCHEDULING = ("scheduling.volcano.sh", "v1beta1")
GROUP_ANNOTATION = "scheduling.k8s.io/group-name"
ENDED = {"Completed", "Failed", "Aborted", "Terminated"}
FINISHED_PODS = {"Succeeded", "Failed"}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the CRDs -------------------------------------------------------------------------------------


def _crd(kind: str) -> dict[str, Any]:
    path = CRDS / CRD_FILES[kind]
    if not path.exists():
        raise FileNotFoundError(f"Volcano's CRD schemas are missing: {path} (shared/ lies beside the clone)")
    return yaml.safe_load(path.read_text())


def crd_schemas() -> dict[str, dict[str, Any]]:
    """Each kind's openAPIV3Schema as published (for validating what lavahub renders)."""
    return {kind: _crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for kind in CRD_FILES}


def _for_1_20(node: Any) -> Any:
    """Adjust a schema for a 1.20 server: no `default: ""`; map lists whose key has neither a
    default nor `required` left become atomic (kubernetes-test-cluster.md)."""
    if isinstance(node, list):
        return [_for_1_20(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _for_1_20(v) for k, v in node.items() if not (k == "default" and v == "")}
    if node.get("x-kubernetes-list-type") == "map":
        items = node.get("items") or {}
        required = set(items.get("required") or [])
        props = items.get("properties") or {}
        keys = node.get("x-kubernetes-list-map-keys") or []
        if any(key not in required and "default" not in (props.get(key) or {}) for key in keys):
            node["x-kubernetes-list-type"] = "atomic"
            node.pop("x-kubernetes-list-map-keys", None)
    return node


async def install_volcano_crds(admin: ApiClient) -> None:
    """Volcano's four CRDs (adjusted for 1.20) and its `default` queue; idempotent."""
    ext = ApiextensionsV1Api(admin)
    for kind in CRD_FILES:
        crd = _for_1_20(_crd(kind))
        with contextlib.suppress(ApiException):
            await ext.create_custom_resource_definition(crd)  # 409: already there
    for kind in CRD_FILES:
        name = _crd(kind)["metadata"]["name"]
        for _ in range(100):
            crd = await ext.read_custom_resource_definition(name)
            if any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or []):
                break
            await asyncio.sleep(0.1)
    await create_queue(admin, "default", {})


async def create_queue(
    admin: ApiClient, name: str, capability: Mapping[str, str], state: str = "Open"
) -> None:
    """A cluster-scoped Queue with `capability`, its status `state` (as Volcano's controller sets it)."""
    custom = CustomObjectsApi(admin)
    body = {
        "apiVersion": "/".join(SCHEDULING),
        "kind": "Queue",
        "metadata": {"name": name},
        "spec": {"weight": 1, "reclaimable": False, "capability": dict(capability)},
    }
    try:
        await custom.create_cluster_custom_object(*SCHEDULING, "queues", body)
    except ApiException as e:
        if e.status != 409:
            raise
    await merge_patch(
        custom.patch_cluster_custom_object_status, *SCHEDULING, "queues", name, {"status": {"state": state}}
    )


# -- resources ------------------------------------------------------------------------------------


def _requests(pod_spec: Mapping[str, Any]) -> dict[str, float]:
    total: dict[str, float] = {}
    for container in pod_spec.get("containers") or []:
        resources = container.get("resources") or {}
        for name, value in {**(resources.get("limits") or {}), **(resources.get("requests") or {})}.items():
            total[name] = total.get(name, 0.0) + quantity(str(value))
    return total


def _add(a: Mapping[str, float], b: Mapping[str, float], sign: float = 1) -> dict[str, float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + sign * v
    return out


def _fits(need: Mapping[str, float], free: Mapping[str, float]) -> list[str]:
    """The resources `need` has more of than `free` (an empty list: it fits)."""
    return [k for k, v in need.items() if v > free.get(k, 0.0) + 1e-9]


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


# -- placement ------------------------------------------------------------------------------------


def _matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = str(expression.get("key")), expression.get("operator"), expression.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return False


def _node_reason(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why the pod cannot go on `node` whatever is free there (None: it could)."""
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return "node(s) didn't match node selector"
    required = (
        ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        or {}
    ).get("nodeSelectorTerms")
    if required and not any(
        all(_matches(e, labels) for e in term.get("matchExpressions") or []) for term in required
    ):
        return "node(s) didn't match Pod's node affinity/selector"
    tolerations = pod_spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(
            (t.get("operator") == "Exists" and t.get("key") in (None, taint.get("key")))
            or (t.get("key") == taint.get("key") and t.get("value") == taint.get("value"))
            for t in tolerations
        ):
            return "node(s) had taint that the pod didn't tolerate"
    return None


def _ready(node: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


# -- the plugins ----------------------------------------------------------------------------------


def _env_name(task: str) -> str:
    return task.upper().replace("-", "_")


def _plugin_env(job: Mapping[str, Any], task: Mapping[str, Any], index: int) -> dict[str, str]:
    """What Volcano's env, svc and pytorch plugins give pod `index` of `task`."""
    name = job["metadata"]["name"]
    plugins = (job.get("spec") or {}).get("plugins") or {}
    tasks = job["spec"]["tasks"]
    env: dict[str, str] = {}
    if "env" in plugins or "svc" in plugins:
        env.update(VK_TASK_INDEX=str(index), VC_TASK_INDEX=str(index))
    if "svc" in plugins:
        for t in tasks:
            hosts = [f"{name}-{t['name']}-{i}.{name}" for i in range(int(t.get("replicas", 1)))]
            env[f"VC_{_env_name(t['name'])}_HOSTS"] = ",".join(hosts)
            env[f"VC_{_env_name(t['name'])}_NUM"] = str(len(hosts))
    if "pytorch" in plugins:
        args = dict(a.lstrip("-").split("=", 1) for a in plugins["pytorch"] if "=" in a)
        master, worker = args.get("master", "master"), args.get("worker", "worker")
        port = args.get("port", "23456")
        if any(t["name"] == master for t in tasks):
            total = sum(int(t.get("replicas", 1)) for t in tasks if t["name"] in (master, worker))
            rank = 0 if task["name"] == master else index + 1
            env.update(
                MASTER_ADDR=f"{name}-{master}-0.{name}",
                MASTER_PORT=port,
                WORLD_SIZE=str(total),
                RANK=str(rank),
            )
    if "mpi" in plugins:
        args = dict(a.lstrip("-").split("=", 1) for a in plugins["mpi"] if "=" in a)
        worker = args.get("worker", "worker")
        hosts = [
            f"{name}-{worker}-{i}.{name}" for t in tasks if t["name"] == worker for i in range(t["replicas"])
        ]
        env["MPI_HOST"] = ",".join(hosts)
    return env


def _pod(job: Mapping[str, Any], task: Mapping[str, Any], index: int) -> dict[str, Any]:
    meta, spec = job["metadata"], job["spec"]
    name = meta["name"]
    template = copy.deepcopy(task["template"])
    pod_spec = template.get("spec") or {}
    plugins = spec.get("plugins") or {}
    env = _plugin_env(job, task, index)
    for container in pod_spec.get("containers") or []:
        known = {e["name"] for e in container.get("env") or []}
        container["env"] = [
            *(container.get("env") or []),
            *({"name": k, "value": v} for k, v in env.items() if k not in known),
        ]
        if "ray" in plugins and task["name"] in ("head", "worker"):
            head = task["name"] == "head"
            container["command"] = (
                ["ray", "start", "--head", "--block", "--dashboard-host=0.0.0.0", "--port=6379"]
                if head
                else ["ray", "start", "--block", f"--address={name}-head-0.{name}:6379"]
            )
    if "svc" in plugins:
        pod_spec["hostname"] = f"{name}-{task['name']}-{index}"
        pod_spec["subdomain"] = name
    pod_spec["schedulerName"] = spec.get("schedulerName") or "volcano"
    labels = {
        **((template.get("metadata") or {}).get("labels") or {}),
        "volcano.sh/job-name": name,
        "volcano.sh/job-namespace": meta["namespace"],
        "volcano.sh/queue-name": spec.get("queue") or "default",
        "volcano.sh/task-spec": task["name"],
        "volcano.sh/task-index": str(index),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{task['name']}-{index}",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {
                **((template.get("metadata") or {}).get("annotations") or {}),
                GROUP_ANNOTATION: f"{name}-{meta['uid']}",
                "volcano.sh/task-spec": task["name"],
                "volcano.sh/job-name": name,
            },
            "ownerReferences": [_owner(job)],
        },
        "spec": pod_spec,
    }


def _owner(job: Mapping[str, Any]) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": "/".join(BATCH),
        "kind": "Job",
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _tasks(job: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The job's tasks with the webhook's defaults (`default<i>` names, minAvailable = replicas)."""
    tasks = []
    for i, task in enumerate(job["spec"].get("tasks") or []):
        task = dict(task)
        task.setdefault("name", f"default{i}")
        task.setdefault("replicas", 1)
        task.setdefault("minAvailable", task["replicas"])
        tasks.append(task)
    return tasks


def _min_available(job: Mapping[str, Any]) -> int:
    spec = job["spec"]
    return int(spec.get("minAvailable") or sum(t["minAvailable"] for t in _tasks(job)))


def _policy(job: Mapping[str, Any], task_name: str | None, event: str) -> str | None:
    """The action for `event`: the task's own policy first, then the job's."""
    for task in _tasks(job):
        if task["name"] == task_name:
            for policy in task.get("policies") or []:
                if policy.get("event") == event or event in (policy.get("events") or []):
                    return policy.get("action")
    for policy in job["spec"].get("policies") or []:
        if policy.get("event") == event or event in (policy.get("events") or []):
            return policy.get("action")
    return None


class FakeVolcano:
    """Volcano's job controller and scheduler for one namespace, a round every `period` seconds."""

    def __init__(
        self, admin: ApiClient, namespace: str, *, period: float = 0.2, nodes: Iterable[str] | None = None
    ) -> None:
        """`nodes`: the only nodes it places pods on (other tests' nodes run nothing of this one's)."""
        self.nodes = set(nodes) if nodes is not None else None
        self.core = CoreV1Api(admin)
        self.custom = CustomObjectsApi(admin)
        self.namespace = namespace
        self.period = period
        self.scheduling = True  # False: nothing is placed (jobs wait)
        self._said: dict[tuple[str, str], str] = {}  # (object, reason) -> last message, to not repeat events
        self._finished_at: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeVolcano]:
        task = asyncio.create_task(self._loop())
        try:
            yield self
        finally:
            if task.done():
                task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                await self.settle()
            except asyncio.CancelledError:
                raise
            except Exception:  # a round that failed (a conflict, a 409): the next one sees afresh
                log.exception("fake Volcano: a round failed")
            await asyncio.sleep(self.period)

    # -- one round -------------------------------------------------------------------------------
    async def _list(self, group: tuple[str, str], plural: str) -> list[dict[str, Any]]:
        found = await self.custom.list_namespaced_custom_object(*group, self.namespace, plural)
        return list(found.get("items", []))

    async def settle(self) -> None:
        """One controller and one scheduler pass over everything in the namespace."""
        jobs = {j["metadata"]["name"]: j for j in await self._list(BATCH, "jobs")}
        for command in await self._list(BUS, "commands"):
            await self._command(command, jobs)
        pods = (await read_json(self.core.list_namespaced_pod, self.namespace))["items"]
        groups = {g["metadata"]["name"]: g for g in await self._list(SCHEDULING, "podgroups")}
        await self._collect_garbage(jobs, pods, groups)
        for job in jobs.values():
            await self._control(job, [p for p in pods if _owned_by(p, job)], groups)
        if self.scheduling:
            await self._schedule()

    async def _command(self, command: Mapping[str, Any], jobs: Mapping[str, dict[str, Any]]) -> None:
        with contextlib.suppress(ApiException):
            await self.custom.delete_namespaced_custom_object(
                *BUS, self.namespace, "commands", command["metadata"]["name"]
            )
        target = (command.get("target") or {}).get("name")
        job = jobs.get(target or "")
        if job is None:
            return
        action = command.get("action")
        await self._event(
            job,
            "Normal",
            "CommandIssued",
            f"Start to execute command {action}, and clean it up to make sure executed not more than once.",
        )
        job.setdefault("_actions", []).append(action)

    async def _collect_garbage(
        self, jobs: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], groups: Mapping[str, Any]
    ) -> None:
        """What the garbage collector does: objects whose owning Job is gone (by uid) go too.

        An owner missing from this round's listing is looked up again before anything is
        deleted: it may have been created after the listing (with its ConfigMap owned already).
        """
        alive = {j["metadata"]["uid"] for j in jobs.values()}

        async def orphan(obj: Mapping[str, Any]) -> bool:
            owners = [o for o in obj["metadata"].get("ownerReferences") or [] if o.get("kind") == "Job"]
            if not owners or any(o.get("uid") in alive for o in owners):
                return False
            for owner in owners:
                try:
                    found = await self.custom.get_namespaced_custom_object(
                        *BATCH, self.namespace, "jobs", owner["name"]
                    )
                except ApiException as e:
                    if e.status == 404:
                        continue
                    return False
                if found["metadata"]["uid"] == owner.get("uid"):
                    alive.add(owner["uid"])
                    return False
            return True

        for pod in pods:
            if not pod["metadata"].get("deletionTimestamp") and await orphan(pod):
                with contextlib.suppress(ApiException):
                    await self.core.delete_namespaced_pod(pod["metadata"]["name"], self.namespace)
        for group in groups.values():
            if await orphan(group):
                with contextlib.suppress(ApiException):
                    await self.custom.delete_namespaced_custom_object(
                        *SCHEDULING, self.namespace, "podgroups", group["metadata"]["name"]
                    )
        for lister, deleter in (
            (self.core.list_namespaced_config_map, self.core.delete_namespaced_config_map),
            (self.core.list_namespaced_service, self.core.delete_namespaced_service),
        ):
            for obj in (await read_json(lister, self.namespace))["items"]:
                if await orphan(obj):
                    with contextlib.suppress(ApiException):
                        await deleter(obj["metadata"]["name"], self.namespace)

    # -- the job controller ----------------------------------------------------------------------
    async def _control(self, job: dict[str, Any], pods: list[dict[str, Any]], groups: dict[str, Any]) -> None:
        meta = job["metadata"]
        status = job.get("status") or {}
        phase = (status.get("state") or {}).get("phase") or ""
        group_name = f"{meta['name']}-{meta['uid']}"
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        if phase in ENDED:
            await self._expire(job)
            return
        group = groups.get(group_name)
        if group is None:
            group = await self._create_group(job, group_name)
            groups[group_name] = group
        for action in job.pop("_actions", []):
            phase = await self._act(job, action, live, phase)
        if phase in ENDED:
            return
        counts = {"pending": 0, "running": 0, "succeeded": 0, "failed": 0}
        by_phase = {"Pending": "pending", "Running": "running", "Succeeded": "succeeded", "Failed": "failed"}
        for pod in live:
            counts[by_phase.get((pod.get("status") or {}).get("phase") or "Pending", "pending")] += 1
        group_phase = (group.get("status") or {}).get("phase") or "Pending"
        if group_phase in ("Inqueue", "Running") and not pods and phase in ("", "Pending", "Restarting"):
            await self._create_pods(job)
            await self._event(job, "Normal", "ExecuteAction", "Start to create pods")
        total = sum(t["replicas"] for t in _tasks(job))
        minimum = _min_available(job)
        new = phase or "Pending"
        # policies: the first failed pod triggers its task's (or the job's) PodFailed action
        failed = [p for p in live if (p.get("status") or {}).get("phase") == "Failed"]
        for pod in failed:
            event = "PodEvicted" if (pod.get("status") or {}).get("reason") == "Evicted" else "PodFailed"
            action = _policy(job, pod["metadata"]["labels"].get("volcano.sh/task-spec"), event)
            if action:
                new = await self._act(job, action, live, new)
                break
        if new not in ENDED and new != "Aborting":
            for task in _tasks(job):
                done = [
                    p
                    for p in live
                    if p["metadata"]["labels"].get("volcano.sh/task-spec") == task["name"]
                    and (p.get("status") or {}).get("phase") == "Succeeded"
                ]
                if (
                    len(done) >= task["replicas"]
                    and _policy(job, task["name"], "TaskCompleted") == "CompleteJob"
                ):
                    new = await self._act(job, "CompleteJob", live, new)
                    break
        if new not in ENDED and new != "Aborting":
            if counts["succeeded"] + counts["failed"] == total and total:
                success = int(job["spec"].get("minSuccess") or minimum)
                new = "Completed" if counts["succeeded"] >= success else "Failed"
            elif counts["running"] + counts["succeeded"] >= minimum and counts["running"]:
                new = "Running"
        if new == "Aborting" and not [
            p for p in live if (p.get("status") or {}).get("phase") not in FINISHED_PODS
        ]:
            new = "Aborted"
        await self._write_status(job, new, counts, live)

    async def _act(self, job: dict[str, Any], action: str, live: list[dict[str, Any]], phase: str) -> str:
        """Run a lifecycle action: the new phase."""
        unfinished = [p for p in live if (p.get("status") or {}).get("phase") not in FINISHED_PODS]
        if action in ("AbortJob", "TerminateJob", "CompleteJob"):
            for pod in unfinished:  # finished pods are kept (PodRetainPhaseSoft)
                with contextlib.suppress(ApiException):
                    await self.core.delete_namespaced_pod(pod["metadata"]["name"], self.namespace)
            return {"AbortJob": "Aborting", "TerminateJob": "Terminated", "CompleteJob": "Completed"}[action]
        if action == "RestartJob":
            retries = int((job.get("status") or {}).get("retryCount") or 0) + 1
            job.setdefault("status", {})["retryCount"] = retries
            for pod in live:
                with contextlib.suppress(ApiException):
                    await self.core.delete_namespaced_pod(pod["metadata"]["name"], self.namespace)
            return "Failed" if retries >= int(job["spec"].get("maxRetry", 3)) else "Restarting"
        return phase

    async def _expire(self, job: Mapping[str, Any]) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        name = job["metadata"]["name"]
        loop = asyncio.get_running_loop()
        finished = self._finished_at.setdefault(name, loop.time())
        if loop.time() - finished >= int(ttl):
            with contextlib.suppress(ApiException):
                await self.custom.delete_namespaced_custom_object(*BATCH, self.namespace, "jobs", name)

    async def _create_group(self, job: Mapping[str, Any], name: str) -> dict[str, Any]:
        minimum = _min_available(job)
        requests: dict[str, float] = {}
        left = minimum
        for task in _tasks(job):
            count = min(left, task["replicas"])
            for _ in range(count):
                requests = _add(requests, _requests(task["template"].get("spec") or {}))
            left -= count
        body = {
            "apiVersion": "/".join(SCHEDULING),
            "kind": "PodGroup",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "ownerReferences": [_owner(job)],
                "annotations": {},
            },
            "spec": {
                "minMember": minimum,
                "queue": job["spec"].get("queue") or "default",
                "minResources": {k: _shown(v) for k, v in requests.items()},
                **(
                    {"priorityClassName": job["spec"]["priorityClassName"]}
                    if job["spec"].get("priorityClassName")
                    else {}
                ),
            },
        }
        try:
            created = await self.custom.create_namespaced_custom_object(
                *SCHEDULING, self.namespace, "podgroups", body
            )
        except ApiException as e:
            if e.status != 409:
                raise
            created = await self.custom.get_namespaced_custom_object(
                *SCHEDULING, self.namespace, "podgroups", name
            )
        return await self._group_status(created, {"phase": "Pending"})

    async def _create_pods(self, job: Mapping[str, Any]) -> None:
        for task in _tasks(job):
            for index in range(task["replicas"]):
                with contextlib.suppress(ApiException):  # 409: made in an earlier round
                    await self.core.create_namespaced_pod(self.namespace, _pod(job, task, index))  # type: ignore[arg-type]
        name = job["metadata"]["name"]
        if "svc" in (job["spec"].get("plugins") or {}):
            service = {
                "metadata": {"name": name, "namespace": self.namespace, "ownerReferences": [_owner(job)]},
                "spec": {
                    "clusterIP": "None",
                    "selector": {"volcano.sh/job-name": name},
                    "publishNotReadyAddresses": True,
                    "ports": [{"name": "placeholder", "port": 1}],
                },
            }
            hosts = {
                f"{t['name']}.host": "\n".join(f"{name}-{t['name']}-{i}.{name}" for i in range(t["replicas"]))
                for t in _tasks(job)
            }
            config = {
                "metadata": {
                    "name": f"{name}-svc",
                    "namespace": self.namespace,
                    "ownerReferences": [_owner(job)],
                },
                "data": hosts,
            }
            with contextlib.suppress(ApiException):
                await self.core.create_namespaced_service(self.namespace, service)  # type: ignore[arg-type]
            with contextlib.suppress(ApiException):
                await self.core.create_namespaced_config_map(self.namespace, config)  # type: ignore[arg-type]

    async def _write_status(
        self, job: Mapping[str, Any], phase: str, counts: Mapping[str, int], pods: list[dict[str, Any]]
    ) -> None:
        status = dict(job.get("status") or {})
        old = (status.get("state") or {}).get("phase")
        tasks: dict[str, dict[str, dict[str, int]]] = {}
        for pod in pods:
            task = pod["metadata"]["labels"].get("volcano.sh/task-spec", "")
            pod_phase = (pod.get("status") or {}).get("phase") or "Pending"
            counter = tasks.setdefault(task, {"phase": {}})["phase"]
            counter[pod_phase] = counter.get(pod_phase, 0) + 1
        new = {
            **counts,
            "minAvailable": _min_available(job),
            "taskStatusCount": tasks,
            "retryCount": int(status.get("retryCount") or 0),
            "version": int(status.get("version") or 0) + (old != phase),
        }
        if old != phase:
            new["state"] = {"phase": phase, "lastTransitionTime": _now()}
            new["conditions"] = [
                *(status.get("conditions") or []),
                {"status": phase, "lastTransitionTime": _now()},
            ]
        elif all(status.get(k) == v for k, v in new.items() if k != "version"):
            return
        new.pop("version")
        with contextlib.suppress(ApiException):  # gone meanwhile
            await merge_patch(
                self.custom.patch_namespaced_custom_object_status,
                *BATCH,
                self.namespace,
                "jobs",
                job["metadata"]["name"],
                {"status": new},
            )

    async def _group_status(self, group: dict[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
        current = group.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return group
        try:
            patched: dict[str, Any] = await merge_patch(
                self.custom.patch_namespaced_custom_object,
                *SCHEDULING,
                self.namespace,
                "podgroups",
                group["metadata"]["name"],
                {"status": dict(status)},
            )
            return patched
        except ApiException:
            return group

    async def _event(self, obj: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """An event on `obj`, as Volcano records it; the same message twice in a row is one event."""
        meta = obj["metadata"]
        key = (f"{obj.get('kind')}/{meta['name']}", reason)
        if self._said.get(key) == message:
            return
        self._said[key] = message
        now = _now()
        component = "volcano" if obj.get("kind") == "PodGroup" else "vc-controller-manager"
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta["name"],
                "namespace": self.namespace,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
        }
        with contextlib.suppress(ApiException):
            await self.core.create_namespaced_event(self.namespace, body)  # type: ignore[arg-type]

    # -- the scheduler ---------------------------------------------------------------------------
    async def _schedule(self) -> None:
        queues = {
            q["metadata"]["name"]: q
            for q in (await self.custom.list_cluster_custom_object(*SCHEDULING, "queues")).get("items", [])
        }
        groups = sorted(
            await self._list(SCHEDULING, "podgroups"),
            key=lambda g: g["metadata"].get("creationTimestamp") or "",
        )
        pods = (await read_json(self.core.list_namespaced_pod, self.namespace))["items"]
        nodes = [
            n
            for n in (await read_json(self.core.list_node))["items"]
            if _ready(n) and (self.nodes is None or n["metadata"]["name"] in self.nodes)
        ]
        jobs = {j["metadata"]["name"]: j for j in await self._list(BATCH, "jobs")}
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in FINISHED_PODS
            and not p["metadata"].get("deletionTimestamp")
        ]
        # a queue holds its admitted gangs' minResources (Inqueue or Running, their job not ended);
        # its status.allocated and each node's use are its bound, unfinished pods
        held: dict[str, dict[str, float]] = {}
        allocated: dict[str, dict[str, float]] = {}
        for group in groups:
            owner = next((o["name"] for o in group["metadata"].get("ownerReferences") or []), "")
            job_phase = (((jobs.get(owner) or {}).get("status") or {}).get("state") or {}).get("phase")
            if (group.get("status") or {}).get("phase") in ("Inqueue", "Running") and job_phase not in ENDED:
                queue_name = group["spec"].get("queue") or "default"
                need = {k: quantity(str(v)) for k, v in (group["spec"].get("minResources") or {}).items()}
                held[queue_name] = _add(held.get(queue_name, {}), need)
        free = {
            n["metadata"]["name"]: {
                k: quantity(str(v)) for k, v in ((n.get("status") or {}).get("allocatable") or {}).items()
            }
            for n in nodes
        }
        for pod in active:
            node = (pod.get("spec") or {}).get("nodeName")
            need = _requests(pod.get("spec") or {})
            if node:
                queue_name = pod["metadata"]["labels"].get("volcano.sh/queue-name", "default")
                allocated[queue_name] = _add(allocated.get(queue_name, {}), need)
                if node in free:
                    free[node] = _add(free[node], need, -1)
        for group in groups:
            phase = (group.get("status") or {}).get("phase") or "Pending"
            queue_name = group["spec"].get("queue") or "default"
            queue = queues.get(queue_name)
            mine = [
                p
                for p in active
                if (p["metadata"].get("annotations") or {}).get(GROUP_ANNOTATION) == group["metadata"]["name"]
            ]
            if phase == "Pending":
                if queue is None or ((queue.get("status") or {}).get("state") or "Open") != "Open":
                    continue
                capability = {
                    k: quantity(str(v))
                    for k, v in ((queue.get("spec") or {}).get("capability") or {}).items()
                }
                need = {k: quantity(str(v)) for k, v in (group["spec"].get("minResources") or {}).items()}
                room = _add(capability, held.get(queue_name, {}), -1)
                short = [k for k in _fits({k: v for k, v in need.items() if k in capability}, room)]
                if short:
                    await self._event(
                        group,
                        "Normal",
                        "Unschedulable",
                        "queue resource quota insufficient: " + ", ".join(f"insufficient {k}" for k in short),
                    )
                    continue
                held[queue_name] = _add(held.get(queue_name, {}), need)  # reserved while its pods are made
                await self._group_status(group, {"phase": "Inqueue"})
                continue
            if phase not in ("Inqueue", "Running"):
                continue
            unbound = [p for p in mine if not (p.get("spec") or {}).get("nodeName")]
            bound = len(mine) - len(unbound)
            if not unbound:
                if mine and phase != "Running":
                    await self._group_status(
                        group,
                        {
                            "phase": "Running",
                            "conditions": [
                                {
                                    "type": "Scheduled",
                                    "status": "True",
                                    "lastTransitionTime": _now(),
                                    "reason": "tasks in gang are ready to be scheduled",
                                }
                            ],
                        },
                    )
                continue
            await self._place(group, jobs, unbound, bound, nodes, free)
        await self._queue_status(queues, allocated)

    async def _place(
        self,
        group: dict[str, Any],
        jobs: Mapping[str, Any],
        unbound: list[dict[str, Any]],
        bound: int,
        nodes: list[dict[str, Any]],
        free: dict[str, dict[str, float]],
    ) -> None:
        trial = {k: dict(v) for k, v in free.items()}
        placed: list[tuple[dict[str, Any], str]] = []
        reasons: dict[str, dict[str, int]] = {}
        alone: dict[str, str] = {}
        for pod in unbound:
            spec = pod.get("spec") or {}
            need = _requests(spec)
            why: dict[str, int] = {}
            target = None
            for node in nodes:
                name = node["metadata"]["name"]
                reason = _node_reason(spec, node)
                if reason is None:
                    short = _fits(need, trial[name])
                    if not short:
                        target = name
                        break
                    if not _fits(need, free[name]):
                        alone.setdefault(pod["metadata"]["name"], name)
                    reason = ", ".join(f"Insufficient {k}" for k in short)
                why[reason] = why.get(reason, 0) + 1
            if target is None:
                reasons[pod["metadata"]["name"]] = why
                continue
            trial[target] = _add(trial[target], need, -1)
            placed.append((pod, target))
        minimum = int(group["spec"].get("minMember") or 1)
        if bound + len(placed) >= minimum:
            for pod, node_name in placed:
                await self._bind(pod, node_name)
                free[node_name] = _add(free[node_name], _requests(pod.get("spec") or {}), -1)
            return
        # the gang does not fit: say so in Volcano's words, on the PodGroup, the Job and each pod
        first = next(iter(reasons), unbound[0]["metadata"]["name"])
        detail = reasons.get(first) or {"node(s) were too busy for the whole gang": len(nodes)}
        origin = ", ".join(f"{n} {r}" for r, n in sorted(detail.items()))
        pending = len(unbound)
        unschedulable = len(unbound) - len(alone)
        message = (
            f"{pending}/{bound + pending} tasks in gang unschedulable: pod group is not ready, "
            f"{pending} Pending, "
            f"{minimum} minAvailable; Pending: {unschedulable} Unschedulable, {len(alone)} Schedulable. "
            f"Origin reason is {first}: 0/{len(nodes)} nodes are unavailable: {origin}."
        )
        condition = {
            "type": "Unschedulable",
            "status": "True",
            "reason": "NotEnoughResources",
            "message": message,
            "lastTransitionTime": _now(),
            "transitionID": group["metadata"].get("uid", ""),
        }
        conditions = (group.get("status") or {}).get("conditions") or []
        if not any(c.get("message") == message for c in conditions):
            await self._group_status(
                group, {"phase": (group.get("status") or {}).get("phase"), "conditions": [condition]}
            )
        group = {**group, "apiVersion": "/".join(SCHEDULING), "kind": "PodGroup"}
        await self._event(group, "Warning", "Unschedulable", message)
        job = jobs.get(next((o["name"] for o in group["metadata"].get("ownerReferences") or []), ""))
        if job is not None:
            job = {**job, "kind": "Job", "apiVersion": "/".join(BATCH)}
            await self._event(
                job,
                "Warning",
                "PodGroupPending",
                f"PodGroup {self.namespace}:{job['metadata']['name']} unschedulable, reason: {message}",
            )
        for pod in unbound:
            name = pod["metadata"]["name"]
            if name in alone:
                said = (
                    f"Pod {self.namespace}/{name} can possibly be assigned to {alone[name]}, "
                    "once minAvailable is satisfied"
                )
                reason = "Schedulable"
            else:
                said, reason = message, "Unschedulable"
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "PodScheduled" and c.get("message") == said for c in conditions):
                continue
            status = {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": reason,
                        "message": said,
                        "lastTransitionTime": _now(),
                    }
                ]
            }
            with contextlib.suppress(ApiException):
                await self.core.patch_namespaced_pod_status(name, self.namespace, {"status": status})

    async def _bind(self, pod: Mapping[str, Any], node: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod["metadata"]["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        with contextlib.suppress(ApiException):
            response = await raw(
                self.core.create_namespaced_pod_binding, pod["metadata"]["name"], self.namespace, body
            )
            response.release()

    async def _queue_status(self, queues: Mapping[str, Any], held: Mapping[str, Mapping[str, float]]) -> None:
        for name, queue in queues.items():
            allocated = {k: _shown(v) for k, v in (held.get(name) or {}).items() if v > 0}
            if ((queue.get("status") or {}).get("allocated") or {}) == allocated:
                continue
            patch = {
                "status": {
                    "allocated": {
                        **dict.fromkeys((queue.get("status") or {}).get("allocated") or {}),
                        **allocated,
                    }
                }
            }
            with contextlib.suppress(ApiException):
                await merge_patch(
                    self.custom.patch_cluster_custom_object_status, *SCHEDULING, "queues", name, patch
                )


def _owned_by(obj: Mapping[str, Any], job: Mapping[str, Any]) -> bool:
    return any(o.get("uid") == job["metadata"]["uid"] for o in obj["metadata"].get("ownerReferences") or [])

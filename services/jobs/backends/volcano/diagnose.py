"""Why a Volcano job is pending, as facts: from its PodGroup, its queue, events, pods and nodes.

Volcano's own words ("0/0 tasks in gang unschedulable", "queue resource quota
insufficient") name internal objects and leave out the numbers. This module reads
the same objects Volcano writes (as the backend's informers hold them) and answers
with a reason code, the numbers and the job's place in its queue;
`services.jobs.explain` turns them into sentences.

Reason codes: `QueueClosed`, `WaitingForQuota` (the queue's capability, less what
its running jobs hold, is short), `NoNodeFits` (no node could hold even one
worker), `GangIncomplete` (single workers fit, all of them at once do not),
`ImagePull`, `Starting` (admitted, pods being created or started).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from spawner.resources import Resources, parse_memory

from ..base import Diagnosis, Shortfall

GPU_RESOURCES = ("nvidia.com/gpu",)
IMAGE_WAITS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


@dataclass
class Facts:
    """What the cluster says about one pending job."""

    vcjob: Mapping[str, Any]
    pods: Sequence[Mapping[str, Any]]
    podgroup: Mapping[str, Any] | None = None
    queue: Mapping[str, Any] | None = None
    queue_groups: Sequence[Mapping[str, Any]] = ()  # the namespace's PodGroups in the same queue
    events: Sequence[Mapping[str, Any]] = ()
    nodes: Sequence[Mapping[str, Any]] | None = None  # None: the service may not read nodes
    placed: Sequence[Mapping[str, Any]] = ()  # the namespace's unfinished pods on nodes: what they use
    gpu_resource: str = "nvidia.com/gpu"
    notes: list[str] = field(default_factory=list)


def podgroup_name(vcjob: Mapping[str, Any]) -> str:
    """The PodGroup Volcano makes for a Job: `<job>-<job's uid>`."""
    return f"{vcjob['metadata']['name']}-{vcjob['metadata']['uid']}"


def facts(
    vcjob: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    queue: Mapping[str, Any] | None,
    groups: Iterable[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]] | None,
    placed: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
) -> Facts:
    """The facts of `vcjob`'s wait, from what the backend's informers hold: its queue, the
    namespace's PodGroups, the nodes, the jobs' pods, and the events on the Job and its PodGroup."""
    queue_name = (vcjob.get("spec") or {}).get("queue") or "default"
    group = podgroup_name(vcjob)
    in_queue = [g for g in groups if (g.get("spec") or {}).get("queue") == queue_name]
    found = Facts(
        vcjob=vcjob,
        pods=pods,
        queue=queue,
        queue_groups=in_queue,
        podgroup=next((g for g in in_queue if g["metadata"]["name"] == group), None),
        nodes=nodes,
        placed=[
            p
            for p in placed
            if (p.get("spec") or {}).get("nodeName")
            and (p.get("status") or {}).get("phase") in ("Pending", "Running")
        ],
        events=sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""),
    )
    for task in (vcjob.get("spec") or {}).get("tasks") or []:
        for container in task["template"]["spec"].get("containers", []):
            for name in (container.get("resources") or {}).get("limits") or {}:
                if name not in ("cpu", "memory"):
                    found.gpu_resource = name
    return found


def _amounts(resources: Mapping[str, Any] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in (resources or {}).items():
        with contextlib.suppress(ValueError, TypeError):
            out[name] = quantity(str(value))
    return out


def quantity(value: str) -> float:
    """A Kubernetes quantity as a number: `500m` -> 0.5, `8Gi` -> 8589934592, `2` -> 2."""
    if value.endswith("m") and value[:-1].replace(".", "", 1).isdigit():
        return float(value[:-1]) / 1000
    if value and value[-1].isalpha():
        return float(parse_memory(value))
    return float(value)


def _label(resource: str) -> str:
    return "CPUs" if resource == "cpu" else "memory" if resource == "memory" else "GPUs"


def _need(per_worker: Resources, gpu_resource: str) -> dict[str, float]:
    need = {"cpu": per_worker.cpus, "memory": float(per_worker.memory)}
    if per_worker.gpus:
        need[gpu_resource] = float(per_worker.gpus)
    return {k: v for k, v in need.items() if v}


def _position(facts: Facts) -> tuple[int, int]:
    """(this job's place among the queue's waiting PodGroups, how many run in the queue)."""
    mine = facts.podgroup
    waiting = [g for g in facts.queue_groups if (g.get("status") or {}).get("phase") in (None, "Pending")]
    running = [
        g for g in facts.queue_groups if (g.get("status") or {}).get("phase") in ("Inqueue", "Running")
    ]
    if mine is None:
        return len(waiting) + 1, len(running)
    created = mine["metadata"].get("creationTimestamp") or ""
    ahead = [g for g in waiting if (g["metadata"].get("creationTimestamp") or "") < created]
    return len(ahead) + 1, len(running)


def diagnose(facts: Facts, per_worker: Resources, workers: int) -> Diagnosis:
    queue_name = (facts.vcjob.get("spec") or {}).get("queue") or "default"
    gang = int((facts.vcjob.get("spec") or {}).get("minAvailable") or workers)
    need_one = _need(per_worker, facts.gpu_resource)
    need_all = {k: v * gang for k, v in need_one.items()}
    phase = ((facts.podgroup or {}).get("status") or {}).get("phase") or "Pending"
    position, running = _position(facts)

    if facts.queue is None:
        return Diagnosis(
            reason="QueueClosed", pool=queue_name, waiting_for=f"queue {queue_name}, which does not exist"
        )
    state = (facts.queue.get("status") or {}).get("state") or "Open"
    if state != "Open":
        return Diagnosis(
            reason="QueueClosed", pool=queue_name, notes=(f"Queue {queue_name} is {state.lower()}.",)
        )

    for pod in facts.pods:  # an image that cannot be pulled outranks every other reason
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_WAITS:
                image = status.get("image", "?")
                return Diagnosis(
                    reason="ImagePull",
                    pool=queue_name,
                    notes=(
                        f"Image {image} cannot be pulled: {waiting.get('message') or waiting['reason']}.",
                    ),
                )

    if phase == "Pending":
        capability = _amounts((facts.queue.get("spec") or {}).get("capability"))
        allocated = _amounts((facts.queue.get("status") or {}).get("allocated"))
        shorts = []
        for resource, amount in need_all.items():
            if resource not in capability:
                continue  # not limited in this queue
            free = capability[resource] - allocated.get(resource, 0.0)
            if amount > free:
                shorts.append(Shortfall(_label(resource), amount, free, capability[resource]))
        if shorts:
            return Diagnosis(
                reason="WaitingForQuota",
                pool=queue_name,
                shortfalls=tuple(shorts),
                position=position,
                holders=running,
            )
        return Diagnosis(reason="Starting", pool=queue_name, position=position, notes=_volcano_said(facts))

    # admitted by the queue: are there nodes for its pods?
    unplaced = [p for p in facts.pods if not (p.get("spec") or {}).get("nodeName")]
    if facts.pods and not unplaced:
        return Diagnosis(
            reason="Starting", pool=queue_name, notes=("All its workers are placed; they are starting.",)
        )
    if not facts.pods:
        return Diagnosis(
            reason="Starting", pool=queue_name, notes=("Volcano is creating its workers' pods.",)
        )
    if facts.nodes is not None:
        fits, best = _nodes_for(facts, need_one)
        if fits == 0:
            # the resource no node has enough of, GPUs first: what the suggestion should change
            short = [r for r in need_one if best.get(r, (0.0, 0.0))[0] < need_one[r]] or list(need_one)
            resource = max(short, key=lambda r: r not in ("cpu", "memory"))
            most, of = best.get(resource, (0.0, 0.0))
            return Diagnosis(
                reason="NoNodeFits",
                pool=queue_name,
                shortfalls=(Shortfall(_label(resource), need_one.get(resource, 0), most, of),),
                notes=_volcano_said(facts),
                per_node=True,
            )
        if fits < gang:
            return Diagnosis(
                reason="GangIncomplete",
                pool=queue_name,
                fits=fits,
                gang=gang,
                notes=_volcano_said(facts),
            )
    return Diagnosis(reason="GangIncomplete", pool=queue_name, gang=gang, notes=_volcano_said(facts))


def _nodes_for(facts: Facts, need: Mapping[str, float]) -> tuple[int, dict[str, tuple[float, float]]]:
    """How many workers fit on the nodes' free resources now, and per resource the most free on
    any one node (with that node's allocatable)."""
    template = {}
    with contextlib.suppress(LookupError, TypeError):
        template = facts.pods[0]["spec"]
    selector = template.get("nodeSelector") or {}
    used: dict[str, dict[str, float]] = {}
    for pod in facts.placed or [p for p in facts.pods if (p.get("spec") or {}).get("nodeName")]:
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            for container in pod["spec"].get("containers", []):
                for k, v in _amounts((container.get("resources") or {}).get("requests")).items():
                    used.setdefault(node, {})[k] = used.get(node, {}).get(k, 0.0) + v
    fits, best = 0, dict[str, tuple[float, float]]()
    for node in facts.nodes or ():
        labels = node["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if not _ready(node):
            continue
        allocatable = _amounts((node.get("status") or {}).get("allocatable"))
        free = dict(allocatable)
        for k, v in used.get(node["metadata"]["name"], {}).items():
            free[k] = free.get(k, 0.0) - v
        for k in need:
            if k not in best or free.get(k, 0.0) > best[k][0]:
                best[k] = (free.get(k, 0.0), allocatable.get(k, 0.0))
        counts = [int(free.get(k, 0.0) // v) for k, v in need.items() if v]
        fits += min(counts) if counts else 0
    return fits, best


def _ready(node: Mapping[str, Any]) -> bool:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _volcano_said(facts: Facts) -> tuple[str, ...]:
    """Volcano's own last word on the job, for those who know it (the condition or an event)."""
    for condition in ((facts.podgroup or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Unschedulable" and condition.get("status") == "True":
            return (f"Volcano says: {condition.get('message')}",)
    for event in reversed(facts.events):
        if event.get("reason") in ("Unschedulable", "PodGroupPending", "FailedScheduling"):
            return (f"Volcano says: {event.get('message')}",)
    return ()

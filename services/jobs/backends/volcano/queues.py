"""One Volcano Queue per project, its capability the project's quota: `lavahub queues sync`.

Volcano ties no namespace to a queue, so lavahub keeps the mapping: a project's jobs
go to `project.queue` (the service refuses a queue that is missing or closed), and
this module makes each such queue exist with the project's quota as its hard cap.
Resources a quota leaves unlimited are left out of `capability`, which Volcano
reads as unlimited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubernetes_asyncio.client import CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from spawner.projects import Project
from spawner.resources import format_cpus, format_memory

GROUP, VERSION, PLURAL = "scheduling.volcano.sh", "v1beta1", "queues"
GPU_RESOURCE = "nvidia.com/gpu"  # the resource a project's GPU quota caps in its queue
MANAGED = {"app.kubernetes.io/managed-by": "lavahub"}


def capability(project: Project) -> dict[str, str]:
    quota, cap = project.quota, {}
    if quota.cpus is not None:
        cap["cpu"] = format_cpus(quota.cpus)
    if quota.memory is not None:
        cap["memory"] = format_memory(quota.memory)
    if quota.gpus is not None:
        cap[GPU_RESOURCE] = str(quota.gpus)
    return cap


def queues_for(projects: Iterable[Project]) -> dict[str, dict[str, Any]]:
    """The Queue objects the projects need, by name; projects sharing a queue share its cap.

    Two projects naming one queue with different quotas would make one cap wrong for the
    other: the first project (by name) sets it, and `sync` reports the clash.
    """
    queues: dict[str, dict[str, Any]] = {}
    for project in sorted(projects, key=lambda p: p.name):
        if project.queue in queues:
            continue
        queues[project.queue] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Queue",
            "metadata": {
                "name": project.queue,
                "labels": dict(MANAGED),
                "annotations": {"lavahub.io/project": project.name},
            },
            "spec": {"weight": 1, "reclaimable": False, "capability": capability(project)},
        }
    return queues


async def sync(custom: CustomObjectsApi, projects: Iterable[Project]) -> list[str]:
    """Create missing queues and set the capability of existing ones; what was done, in words."""
    projects = list(projects)
    done = []
    owners: dict[str, list[Project]] = {}
    for project in projects:
        owners.setdefault(project.queue, []).append(project)
    for name, queue in queues_for(projects).items():
        sharing = owners[name]
        if len({tuple(sorted(capability(p).items())) for p in sharing}) > 1:
            listed = ", ".join(p.name for p in sharing)
            done.append(
                f"queue {name}: projects {listed} share it with different quotas; {sharing[0].name}'s is used"
            )
        wanted = queue["spec"]["capability"]
        try:
            current = await custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        except ApiException as e:
            if e.status != 404:
                raise
            await custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, queue)
            done.append(f"queue {name}: created, capability {_shown(wanted)}")
            continue
        if (current.get("spec") or {}).get("capability") != wanted:
            # a merge patch cannot drop keys by omission: name each old one as null
            old = (current.get("spec") or {}).get("capability") or {}
            patch = {"spec": {"capability": {**dict.fromkeys(old), **wanted}}}
            await custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, patch)
            done.append(f"queue {name}: capability {_shown(old)} -> {_shown(wanted)}")
        else:
            done.append(f"queue {name}: up to date, capability {_shown(wanted)}")
    return done


def _shown(cap: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(cap.items())) or "unlimited"

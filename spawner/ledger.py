"""What this hub's local workspaces hold, recorded in lavahub's database (`holdings`).

The jobs service counts the same holdings, so a project's running workspaces and
running jobs share one quota; quota and GPUs are checked and taken in one
transaction, so neither a concurrent spawn nor a job can take the same last share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from .errors import PublicError
from .gpus import Gpu, GpuAllocator
from .holdings import CLUSTER, WORKSPACE, GpuChoice, Holding, Holdings, usage
from .resources import Resources
from .workspace import WorkspaceRequest

log = logging.getLogger(__name__)

OTHERS = "\0others"  # the allocator's name for every GPU someone else holds


class Ledger:
    """Holdings of workspaces by holder (`alice` or `alice/ws2`), over this machine's GPUs."""

    def __init__(self, holdings: Holdings, gpus: Sequence[Gpu]):
        self.holdings = holdings
        self.gpus = tuple(gpus)
        self._here: set[str] = set()  # holders this hub process started or restored

    def usage(self, project: str, *, excluding: str | None = None) -> dict[str, Resources]:
        """What the project's holders hold (workspaces by holder, jobs by user), as refusals name them."""
        held = self.holdings.list(project=project)
        return usage(h for h in held if not (h.kind == WORKSPACE and h.holder == excluding))

    def reserve(self, holder: str, request: WorkspaceRequest) -> tuple[Gpu, ...]:
        project = request.project
        holding = Holding(WORKSPACE, holder, request.user, project.name, request.resources)
        choose = self._chooser(holder, request.resources.gpus, request.gpu_type)
        taken = self.holdings.reserve(holding, project.quota, choose_gpus=choose)
        self._here.add(holder)
        return self._gpus(taken.gpu_indices)

    def restore(
        self, holder: str, project: str, resources: Resources, gpu_indices: Iterable[int], *, user: str
    ) -> tuple[Gpu, ...]:
        """Re-record a workspace that kept running through a hub restart (no quota check: it runs).

        Of its GPUs, those someone else holds meanwhile are not restored, as before.
        """
        wanted = tuple(gpu_indices)
        known = {g.index for g in self.gpus}

        def keep(held: Mapping[int, str]) -> list[int]:
            return [i for i in wanted if i in known and i not in held]

        holding = Holding(WORKSPACE, holder, user, project, resources)
        taken = self.holdings.reserve(holding, choose_gpus=keep)
        self._here.add(holder)
        return self._gpus(taken.gpu_indices)

    def release(self, holder: str) -> None:
        self.holdings.release(WORKSPACE, holder)
        self._here.discard(holder)

    def held_by(self, holder: str) -> tuple[Gpu, ...]:
        held = self.holdings.get(WORKSPACE, holder)
        return self._gpus(held.gpu_indices) if held else ()

    def reconcile(self) -> list[str]:
        """Release the workspace holdings this hub neither started nor restored: left by a hub
        that died while those workspaces ended or were being started. Returns their holders."""
        stale = [h.holder for h in self.holdings.release_all_but(WORKSPACE, keep=self._here)]
        if stale:
            log.warning("Released the holdings of workspaces no longer running: %r", stale)
        return stale

    def _gpus(self, indices: Iterable[int]) -> tuple[Gpu, ...]:
        by_index = {g.index: g for g in self.gpus}
        return tuple(by_index[i] for i in indices if i in by_index)

    def _chooser(self, holder: str, count: int, model: str | None) -> GpuChoice:
        """`count` GPUs (of `model`) no other workspace holds, chosen inside the reservation's
        transaction: first those the jobs' Ray head was not offered, then, only if those are too
        few, the head's too (Ray may then give a job the same GPU: said in the hub's log)."""

        def choose(held: Mapping[int, str]) -> list[int]:
            by_workspaces = [i for i, kind in held.items() if kind != CLUSTER]
            allocator = GpuAllocator(self.gpus)
            allocator.restore(OTHERS, held)  # the head's too: try without them first
            try:
                return [g.index for g in allocator.allocate(holder, count, model)]
            except PublicError as e:
                if e.field != "gpus" or len(by_workspaces) == len(held):
                    raise
            allocator = GpuAllocator(self.gpus)
            allocator.restore(OTHERS, by_workspaces)
            chosen = [g.index for g in allocator.allocate(holder, count, model)]
            shared = [i for i in chosen if held.get(i) == CLUSTER]
            log.warning(
                "Workspace %r is given GPUs %s, which the jobs' Ray head was offered too: no other was "
                "free (jobs may use them until the head restarts)",
                holder,
                shared,
            )
            return chosen

        return choose

"""What running local workspaces hold, so quota and GPU exclusivity are checked in one step."""

from __future__ import annotations

from collections.abc import Iterable

from .gpus import Gpu, GpuAllocator
from .resources import Resources, check_quota
from .workspace import WorkspaceRequest


class Ledger:
    """Holdings of running workspaces by holder (`alice` or `alice/ws2`) in one hub process.

    `reserve` checks the project quota and takes GPUs without awaiting in between,
    so two concurrent spawns cannot both take the last GPU.
    """

    def __init__(self, allocator: GpuAllocator):
        self.allocator = allocator
        self._holdings: dict[str, tuple[str, Resources]] = {}

    def usage(self, project: str, *, excluding: str | None = None) -> dict[str, Resources]:
        return {h: r for h, (p, r) in self._holdings.items() if p == project and h != excluding}

    def reserve(self, holder: str, request: WorkspaceRequest) -> tuple[Gpu, ...]:
        project = request.project
        check_quota(
            project.name, project.quota, request.resources, self.usage(project.name, excluding=holder)
        )
        gpus = self.allocator.allocate(holder, request.resources.gpus, request.gpu_type)
        self._holdings[holder] = (project.name, request.resources)
        return gpus

    def restore(self, holder: str, project: str, resources: Resources, gpu_indices: Iterable[int]) -> None:
        self.allocator.restore(holder, gpu_indices)
        self._holdings[holder] = (project, resources)

    def release(self, holder: str) -> None:
        self.allocator.release(holder)
        self._holdings.pop(holder, None)

"""GPUs on this machine (NVML) and their exclusive assignment to local workspaces.

Without NVIDIA's driver the inventory is simply empty: nothing here raises on
import or on a machine with no GPU.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import PublicError

log = logging.getLogger(__name__)


def normalize_model(name: str) -> str:
    """`NVIDIA H100 80GB HBM3` -> `NVIDIA-H100-80GB-HBM3`, the form GPU feature discovery labels use."""
    return re.sub(r"\s+", "-", name.strip())


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    model: str
    memory_mib: int

    @property
    def product(self) -> str:
        return normalize_model(self.model)

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "uuid": self.uuid, "model": self.model, "memory_mib": self.memory_mib}


@functools.cache
def inventory() -> tuple[Gpu, ...]:
    """The machine's NVIDIA GPUs, read once per process; empty when NVML is unavailable."""
    try:
        import pynvml
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        log.info("No NVIDIA GPUs: NVML is not available (%s)", e)
        return ()
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20
            gpus.append(Gpu(index, _text(uuid), _text(name), int(memory)))
        return tuple(gpus)
    except pynvml.NVMLError as e:
        log.warning("Could not read the GPU inventory: %s", e)
        return ()
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class GpuAllocator:
    """Hands each holder distinct GPUs; one GPU never belongs to two holders."""

    def __init__(self, gpus: Sequence[Gpu]):
        self.gpus = tuple(gpus)
        self._holder: dict[int, str] = {}

    def allocate(self, holder: str, count: int, model: str | None = None) -> tuple[Gpu, ...]:
        """Reserve `count` free GPUs (of `model`, if given) for `holder`, or explain why not."""
        self.release(holder)
        if count == 0:
            return ()
        if not self.gpus:
            raise PublicError(
                f"{count} GPU{'s' if count != 1 else ''} asked for, but this machine has no NVIDIA GPU.",
                hint="ask for 0 GPUs",
                field="gpus",
            )
        candidates = [g for g in self.gpus if model is None or g.product == normalize_model(model)]
        if not candidates:
            models = ", ".join(sorted({g.product for g in self.gpus}))
            raise PublicError(
                f"This machine has no GPU of model {model}.",
                hint=f"models here: {models}",
                field="gpu_type",
            )
        free = [g for g in candidates if g.index not in self._holder]
        if len(free) < count:
            raise PublicError(
                f"{count} GPUs asked for, but only {len(free)} of this machine's "
                f"{len(candidates)} {model + ' ' if model else ''}GPUs are free "
                f"({len(candidates) - len(free)} held by other workspaces).",
                hint="ask for fewer GPUs, or stop a workspace that holds one",
                field="gpus",
            )
        chosen = tuple(free[:count])
        for gpu in chosen:
            self._holder[gpu.index] = holder
        return chosen

    def restore(self, holder: str, indices: Iterable[int]) -> tuple[Gpu, ...]:
        """Re-reserve GPUs a still-running workspace held before a hub restart."""
        known = {g.index: g for g in self.gpus}
        restored = []
        for index in indices:
            if index in known and self._holder.get(index, holder) == holder:
                self._holder[index] = holder
                restored.append(known[index])
        return tuple(restored)

    def release(self, holder: str) -> None:
        for index in [i for i, h in self._holder.items() if h == holder]:
            del self._holder[index]

    def held_by(self, holder: str) -> tuple[Gpu, ...]:
        return tuple(g for g in self.gpus if self._holder.get(g.index) == holder)

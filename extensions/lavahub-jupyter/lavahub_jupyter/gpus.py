"""The GPUs this workspace may use, read through NVML: what the status bar shows.

A workspace sees only its own GPUs: a local one is given them in
``CUDA_VISIBLE_DEVICES`` (NVML indices, in PCI order), a pod only has its own
devices, and ``NVIDIA_VISIBLE_DEVICES=none`` means none at all. Without NVIDIA's
driver (or ``nvidia-ml-py``) the answer is simply empty; nothing here raises.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

HIDDEN = {"", "none", "void", "-1"}


@dataclass(frozen=True)
class GpuStatus:
    index: int
    uuid: str
    name: str
    utilization: int  # percent of the last sample period the GPU was busy
    memory_used_mib: int
    memory_total_mib: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def visible(devices: Sequence[GpuStatus], environ: Mapping[str, str]) -> list[GpuStatus]:
    """The devices this process may use, as CUDA and the NVIDIA container runtime would choose them."""
    if environ.get("NVIDIA_VISIBLE_DEVICES", "all").strip().lower() in HIDDEN:
        return []
    chosen = environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is None:
        return list(devices)
    out: list[GpuStatus] = []
    for entry in (part.strip() for part in chosen.split(",")):
        if entry.lower() in HIDDEN:
            break  # CUDA stops at the first entry it cannot use
        if entry.isdigit():
            match = [d for d in devices if d.index == int(entry)]
        else:
            match = [d for d in devices if d.uuid.startswith(entry)]
        if len(match) != 1:
            break
        if match[0] not in out:
            out.append(match[0])
    return out


def read_all() -> list[GpuStatus]:
    """Every GPU NVML sees, sampled now; empty without NVML."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        out = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                busy = int(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except pynvml.NVMLError:  # MIG devices and some vGPUs report no utilization
                busy = 0
            out.append(
                GpuStatus(
                    index=index,
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    utilization=busy,
                    memory_used_mib=int(memory.used) // 2**20,
                    memory_total_mib=int(memory.total) // 2**20,
                )
            )
        return out
    except pynvml.NVMLError as e:
        log.warning("Reading the GPUs through NVML failed: %s", e)
        return []
    finally:
        pynvml.nvmlShutdown()


def workspace_gpus(environ: Mapping[str, str] = os.environ) -> list[GpuStatus]:
    return visible(read_all(), environ)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

"""Which GPUs the lab extension's status item reports: the workspace's own, as CUDA would choose them."""

from __future__ import annotations

import pytest
from lavahub_jupyter.gpus import GpuStatus, read_all, visible, workspace_gpus

DEVICES = [
    GpuStatus(index=i, uuid=f"GPU-{i}aaa-{i}", name="NVIDIA H200", utilization=10 * i,
              memory_used_mib=1024 * i, memory_total_mib=143771)
    for i in range(4)
]  # fmt: skip


@pytest.mark.parametrize(
    ("environ", "indices"),
    [
        ({}, [0, 1, 2, 3]),  # a pod: NVML sees only its own devices
        ({"CUDA_VISIBLE_DEVICES": "2,0"}, [2, 0]),  # a local workspace's share, in CUDA's order
        ({"CUDA_VISIBLE_DEVICES": ""}, []),
        ({"CUDA_VISIBLE_DEVICES": "1,-1,2"}, [1]),  # CUDA stops at the first it cannot use
        ({"CUDA_VISIBLE_DEVICES": "1,7,2"}, [1]),
        ({"CUDA_VISIBLE_DEVICES": "GPU-3aaa"}, [3]),  # a UUID prefix
        ({"CUDA_VISIBLE_DEVICES": "GPU-"}, []),  # ambiguous: matches all four
        ({"CUDA_VISIBLE_DEVICES": "1,1"}, [1]),
        ({"NVIDIA_VISIBLE_DEVICES": "none"}, []),  # a pod that asked for no GPU
        ({"NVIDIA_VISIBLE_DEVICES": "void", "CUDA_VISIBLE_DEVICES": "0"}, []),
    ],
)
def test_the_workspace_sees_only_its_own_gpus(environ: dict[str, str], indices: list[int]) -> None:
    assert [gpu.index for gpu in visible(DEVICES, environ)] == indices


def nvml_loads() -> bool:
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_the_gpus_are_nvmls_and_without_a_driver_there_are_none() -> None:
    gpus = read_all()
    if not nvml_loads():  # no NVIDIA driver (the development machines): empty, nothing raises
        assert gpus == [] and workspace_gpus({}) == []
        return
    assert gpus, "NVML loads but reports no GPU"
    for gpu in gpus:
        assert gpu.uuid.startswith(("GPU-", "MIG-")) and gpu.memory_total_mib > 0
        assert 0 <= gpu.memory_used_mib <= gpu.memory_total_mib and 0 <= gpu.utilization <= 100
    assert workspace_gpus({"NVIDIA_VISIBLE_DEVICES": "none"}) == []

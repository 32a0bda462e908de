import pytest

from spawner.errors import PublicError
from spawner.gpus import Gpu, GpuAllocator, inventory, normalize_model

A100 = "NVIDIA A100-SXM4-80GB"
H100 = "NVIDIA H100 80GB HBM3"
MACHINE = [
    Gpu(0, "GPU-0", A100, 81920),
    Gpu(1, "GPU-1", A100, 81920),
    Gpu(2, "GPU-2", H100, 81559),
    Gpu(3, "GPU-3", H100, 81559),
]


def test_model_names_normalize_like_node_labels():
    assert normalize_model(H100) == "NVIDIA-H100-80GB-HBM3"
    assert Gpu(0, "u", H100, 1).product == "NVIDIA-H100-80GB-HBM3"


def test_holders_get_distinct_gpus_and_release_frees_them():
    allocator = GpuAllocator(MACHINE)
    first = allocator.allocate("alice", 2)
    second = allocator.allocate("bob", 2)
    assert {g.index for g in first}.isdisjoint({g.index for g in second})
    with pytest.raises(PublicError, match=r"only 0 of this machine's 4 GPUs are free \(4 held"):
        allocator.allocate("carol", 1)
    allocator.release("alice")
    assert {g.index for g in allocator.allocate("carol", 2)} == {g.index for g in first}
    assert allocator.held_by("bob") == second


def test_reallocating_replaces_a_holders_gpus():
    allocator = GpuAllocator(MACHINE)
    allocator.allocate("alice", 3)
    assert len(allocator.allocate("alice", 4)) == 4


def test_model_choice():
    allocator = GpuAllocator(MACHINE)
    chosen = allocator.allocate("alice", 2, "NVIDIA-H100-80GB-HBM3")
    assert {g.index for g in chosen} == {2, 3}
    with pytest.raises(PublicError, match="H100"):
        allocator.allocate("bob", 1, "NVIDIA-H100-80GB-HBM3")
    with pytest.raises(PublicError, match="no GPU of model NVIDIA-V100") as refused:
        allocator.allocate("bob", 1, "NVIDIA-V100")
    assert "NVIDIA-A100-SXM4-80GB" in (refused.value.hint or "")


def test_zero_gpus_always_fits_and_no_gpu_machine_refuses_clearly():
    allocator = GpuAllocator([])
    assert allocator.allocate("alice", 0) == ()
    with pytest.raises(PublicError, match="this machine has no NVIDIA GPU") as refused:
        allocator.allocate("alice", 1)
    assert refused.value.hint == "ask for 0 GPUs"


def test_restore_after_hub_restart_keeps_gpus_exclusive():
    allocator = GpuAllocator(MACHINE)
    allocator.restore("alice", [1, 3, 99])  # 99: gone from the machine
    assert [g.index for g in allocator.held_by("alice")] == [1, 3]
    assert {g.index for g in allocator.allocate("bob", 2)} == {0, 2}


def test_inventory_matches_nvml_and_never_raises():
    gpus = inventory()
    assert isinstance(gpus, tuple) and all(isinstance(g, Gpu) for g in gpus)
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        assert gpus == ()  # no driver: empty inventory, no error
        return
    try:
        assert len(gpus) == pynvml.nvmlDeviceGetCount()
    finally:
        pynvml.nvmlShutdown()

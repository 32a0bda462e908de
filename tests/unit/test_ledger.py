import pytest

from spawner.errors import PublicError
from spawner.gpus import Gpu, GpuAllocator
from spawner.ledger import Ledger
from spawner.options import resolve_options
from spawner.resources import Resources

GPUS = [Gpu(i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(4)]


@pytest.fixture
def ledger():
    return Ledger(GpuAllocator(GPUS))


def request(projects, templates, user="alice", **options):
    mine = {n: p for n, p in projects.items() if user in p.members}
    return resolve_options(options, user=user, admin=False, projects=mine, templates=templates)


def test_quota_counts_every_running_workspace_of_the_project(ledger, projects, templates):
    # project "default": quota 2 GPUs, 8 CPUs, 32Gi; python template allows 4 CPUs
    ledger.reserve("alice", request(projects, templates, cpus=4))
    ledger.reserve("bob", request(projects, templates, user="bob", cpus=3))
    with pytest.raises(PublicError, match=r"quota of 8 CPUs; 7 are in use \(alice 4, bob 3\)"):
        ledger.reserve("alice/ws2", request(projects, templates, cpus=2))
    ledger.release("bob")
    ledger.reserve("alice/ws2", request(projects, templates, cpus=2))


def test_other_projects_do_not_count(ledger, projects, templates):
    ledger.reserve("alice", request(projects, templates, project="vision", template="pytorch", gpus=2))
    ledger.reserve("bob", request(projects, templates, user="bob", cpus=4))  # default project
    assert ledger.usage("vision") == {"alice": Resources(2, 4 * 2**30, 2)}


def test_restarting_a_workspace_does_not_count_its_old_share(ledger, projects, templates):
    ledger.reserve("alice", request(projects, templates, cpus=4))
    ledger.reserve("alice", request(projects, templates, cpus=4))
    assert sum(r.cpus for r in ledger.usage("default").values()) == 4


def test_gpu_refusal_leaves_no_holding(projects, templates):
    ledger = Ledger(GpuAllocator(GPUS[:3]))  # fewer GPUs than vision's quota of 4
    ledger.reserve("alice", request(projects, templates, project="vision", template="pytorch", gpus=2))
    ledger.reserve("alice/b", request(projects, templates, project="vision", template="pytorch", gpus=1))
    with pytest.raises(PublicError, match=r"only 0 of this machine's 3 .*GPUs are free"):
        ledger.reserve("alice/c", request(projects, templates, project="vision", template="pytorch", gpus=1))
    assert "alice/c" not in ledger.usage("vision")


def test_restore_re_registers_a_running_workspace(ledger):
    ledger.restore("alice", "vision", Resources(1, 1, 2), [0, 1])
    assert ledger.usage("vision") == {"alice": Resources(1, 1, 2)}
    assert [g.index for g in ledger.allocator.held_by("alice")] == [0, 1]

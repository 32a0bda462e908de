import asyncio

import pytest

from spawner.errors import PublicError
from spawner.gpus import Gpu
from spawner.holdings import CLUSTER, JOB, WORKSPACE, Holding, Holdings
from spawner.ledger import Ledger
from spawner.local import local_ledger
from spawner.options import resolve_options
from spawner.resources import Resources

GPUS = [Gpu(i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 81920) for i in range(4)]


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'lavahub.sqlite'}"


@pytest.fixture
def ledger(url):
    return Ledger(Holdings(url), GPUS)


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


def test_running_jobs_count_against_the_same_quota(ledger, projects, templates):
    # a job of bob's holds 6 of default's 8 CPUs, as the jobs service records it
    job = Holding(JOB, "a" * 16, "bob", "default", Resources(6, 2**30, 0))
    ledger.holdings.reserve(job, projects["default"].quota)
    with pytest.raises(PublicError, match=r"quota of 8 CPUs; 6 are in use \(bob's jobs 6\)") as refused:
        ledger.reserve("alice", request(projects, templates, cpus=4))
    assert "a" * 16 not in str(refused.value), "another user's job is never named"
    ledger.reserve("alice", request(projects, templates, cpus=2))


def test_other_projects_do_not_count(ledger, projects, templates):
    ledger.reserve("alice", request(projects, templates, project="vision", template="pytorch", gpus=2))
    ledger.reserve("bob", request(projects, templates, user="bob", cpus=4))  # default project
    assert ledger.usage("vision") == {"alice": Resources(2, 4 * 2**30, 2)}


def test_restarting_a_workspace_does_not_count_its_old_share(ledger, projects, templates):
    ledger.reserve("alice", request(projects, templates, cpus=4))
    ledger.reserve("alice", request(projects, templates, cpus=4))
    assert sum(r.cpus for r in ledger.usage("default").values()) == 4


def test_gpu_refusal_leaves_no_holding(url, projects, templates):
    ledger = Ledger(Holdings(url), GPUS[:3])  # fewer GPUs than vision's quota of 4
    ledger.reserve("alice", request(projects, templates, project="vision", template="pytorch", gpus=2))
    ledger.reserve("alice/b", request(projects, templates, project="vision", template="pytorch", gpus=1))
    with pytest.raises(PublicError, match=r"only 0 of this machine's 3 .*GPUs are free"):
        ledger.reserve("alice/c", request(projects, templates, project="vision", template="pytorch", gpus=1))
    assert "alice/c" not in ledger.usage("vision")


def test_workspaces_get_the_jobs_ray_head_gpus_last(ledger, projects, templates, caplog):
    head = Holding(CLUSTER, "local-ray-head", "", "", Resources())
    ledger.holdings.reserve(head, choose_gpus=lambda held: [0, 1, 2])
    vision = dict(project="vision", template="pytorch", gpus=1)
    assert [g.index for g in ledger.reserve("alice", request(projects, templates, **vision))] == [3]
    assert not caplog.records
    # nothing else is free: one of the head's, said in the hub's log (Ray may give it to a job too)
    assert [g.index for g in ledger.reserve("alice/b", request(projects, templates, **vision))] == [0]
    assert "which the jobs' Ray head was offered too" in caplog.text
    ledger.reserve("alice/c", request(projects, templates, **vision))
    ledger.reserve("alice/d", request(projects, templates, **vision))
    with pytest.raises(PublicError) as refused:  # project vision's quota is 4 GPUs: alice/d was the 4th
        ledger.reserve("alice/e", request(projects, templates, **vision))
    assert "quota of 4 GPUs" in refused.value.message


def test_two_hub_processes_never_share_a_gpu(url, projects, templates):
    """Each ledger here stands for a process of its own: the GPUs are taken in the database."""
    first, second = Ledger(Holdings(url), GPUS), Ledger(Holdings(url), GPUS)
    vision = dict(project="vision", template="pytorch", gpus=2)
    a = first.reserve("alice", request(projects, templates, **vision))
    b = second.reserve("alice/b", request(projects, templates, **vision))
    assert {g.index for g in a} & {g.index for g in b} == set()


def test_restore_re_registers_a_running_workspace(ledger):
    ledger.restore("alice", "vision", Resources(1, 1, 2), [0, 1], user="alice")
    assert ledger.usage("vision") == {"alice": Resources(1, 1, 2)}
    assert [g.index for g in ledger.held_by("alice")] == [0, 1]


def test_restore_skips_gpus_someone_else_holds_now(ledger):
    ledger.restore("bob", "vision", Resources(1, 1, 1), [1], user="bob")
    restored = ledger.restore("alice", "vision", Resources(1, 1, 2), [0, 1], user="alice")
    assert [g.index for g in restored] == [0]


def test_a_new_hub_releases_the_holdings_of_workspaces_it_did_not_restore(url, projects, templates):
    crashed = Ledger(Holdings(url), GPUS)  # the hub before a crash
    crashed.reserve("alice", request(projects, templates, cpus=2))
    crashed.reserve("bob", request(projects, templates, user="bob", cpus=2))  # ended while the hub was down
    job = Holding(JOB, "a" * 16, "bob", "default", Resources(1, 0, 0))
    crashed.holdings.reserve(job)

    async def hub_start():
        ledger = local_ledger(url)  # as the first load_state makes it, on the hub's loop
        ledger.restore("alice", "default", Resources(2, 0, 0), [], user="alice")  # still running
        assert ledger.holdings.holders(WORKSPACE) == {"alice", "bob"}, "nothing released before..."
        await asyncio.sleep(0)  # ...JupyterHub's start-up first awaits, having restored all
        return ledger

    try:
        ledger = asyncio.run(hub_start())
        assert ledger.holdings.holders(WORKSPACE) == {"alice"}
        assert ledger.holdings.holders(JOB) == {"a" * 16}, "jobs are the jobs service's to reconcile"
    finally:
        local_ledger.cache_clear()

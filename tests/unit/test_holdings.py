"""The holdings table: one quota for workspaces and jobs, checked and recorded in one transaction,
also when several processes reserve the last share at the same instant."""

from __future__ import annotations

import multiprocessing
import time

import pytest

from spawner.errors import PublicError
from spawner.holdings import CLUSTER, JOB, WORKSPACE, Holding, Holdings, Short, first_short, usage
from spawner.resources import Quota, Resources

GI = 2**30
RACERS = 8


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'lavahub.sqlite'}"


def workspace(holder: str, cpus: float, project: str = "default", gpus: int = 0) -> Holding:
    return Holding(WORKSPACE, holder, holder.split("/")[0], project, Resources(cpus, GI, gpus))


def job(job_id: str, cpus: float, user: str = "bob", project: str = "default") -> Holding:
    return Holding(JOB, job_id, user, project, Resources(cpus, GI, 0))


def test_workspaces_and_jobs_count_against_one_quota(url):
    holdings = Holdings(url)
    holdings.reserve(workspace("alice", 2), Quota(cpus=4))
    holdings.reserve(job("a" * 16, 1), Quota(cpus=4))
    with pytest.raises(PublicError, match=r"quota of 4 CPUs; 3 are in use \(alice 2, bob's jobs 1\)"):
        holdings.reserve(job("b" * 16, 2), Quota(cpus=4))
    assert holdings.get(JOB, "b" * 16) is None, "a refusal records nothing"
    holdings.release(JOB, "a" * 16)
    holdings.reserve(job("b" * 16, 2), Quota(cpus=4))
    assert usage(holdings.list(project="default")) == {
        "alice": Resources(2, GI, 0),
        "bob's jobs": Resources(2, GI, 0),
    }


def test_other_projects_and_the_holders_own_share_do_not_count(url):
    holdings = Holdings(url)
    holdings.reserve(workspace("alice", 4, project="vision"), Quota(cpus=4))
    holdings.reserve(workspace("bob", 4), Quota(cpus=4))
    holdings.reserve(workspace("bob", 4), Quota(cpus=4))  # restarted: its old share is replaced
    assert [h.holder for h in holdings.list(project="default")] == ["bob"]


def test_gpus_held_by_anyone_are_not_chosen_again(url):
    holdings = Holdings(url)
    first = lambda held: [i for i in range(4) if i not in held][:1]  # noqa: E731
    assert holdings.reserve(workspace("alice", 1, gpus=1), choose_gpus=first).gpu_indices == (0,)
    holdings.reserve(Holding(CLUSTER, "ray-head", "", "", Resources()), choose_gpus=lambda held: [1, 2])
    seen: dict[int, str] = {}
    holdings.reserve(workspace("bob", 1, gpus=1), choose_gpus=lambda held: seen.update(held) or [3])
    assert seen == {0: WORKSPACE, 1: CLUSTER, 2: CLUSTER}


def test_stale_holdings_are_released_by_kind(url):
    holdings = Holdings(url)
    for job_id in ("a" * 16, "b" * 16):
        holdings.reserve(job(job_id, 1))
    holdings.reserve(workspace("alice", 1))
    released = holdings.release_all_but(JOB, keep={"a" * 16})
    assert [h.holder for h in released] == ["b" * 16]
    assert holdings.holders(JOB) == {"a" * 16} and holdings.holders(WORKSPACE) == {"alice"}


def test_first_short_is_the_first_resource_that_does_not_fit():
    quota = Quota(gpus=2, cpus=4, memory=8 * GI)
    assert first_short(quota, Resources(3, GI, 0), Resources(1, GI, 0)) is None
    assert first_short(quota, Resources(3, GI, 1), Resources(2, GI, 2)) == Short("GPUs", 2, 1, 2)
    assert first_short(quota, Resources(3.5, GI, 0), Resources(1, GI, 0)) == Short("CPUs", 4, 3.5, 1)
    assert first_short(Quota(), Resources(100, 100 * GI, 9), Resources(1, GI, 1)) is None


def _race(url, barrier, results, index, kind):
    holdings = Holdings(url)
    barrier.wait()
    try:
        if kind == "cpu":
            taken = holdings.reserve(job(f"{index:016x}", 1), Quota(cpus=1))
        else:  # one GPU each, of a machine with two
            free = lambda held: [i for i in range(2) if i not in held][:1] or _no_gpu()  # noqa: E731
            taken = holdings.reserve(workspace(f"user{index}", 0, gpus=1), choose_gpus=free)
        results.put((index, taken.gpu_indices, time.monotonic()))
    except PublicError:
        results.put((index, None, time.monotonic()))


def _no_gpu():
    raise PublicError("no GPU is free")


def race(url, kind):
    """RACERS processes reserve at the same instant; what each got."""
    Holdings(url).engine.dispose()  # the database exists before anyone races for it
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(RACERS), context.Queue()
    processes = [context.Process(target=_race, args=(url, barrier, results, i, kind)) for i in range(RACERS)]
    for process in processes:
        process.start()
    got = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    spread = max(t for *_, t in got) - min(t for *_, t in got)
    print(f"{RACERS} processes reserved at once ({kind}): {sum(g is not None for _, g, _ in got)} won, "
          f"answers within {spread * 1000:.0f} ms")  # fmt: skip
    return got


def test_processes_racing_for_the_last_cpu_share_exactly_one_wins(url):
    got = race(url, "cpu")
    winners = [index for index, taken, _ in got if taken is not None]
    assert len(winners) == 1
    assert Holdings(url).holders(JOB) == {f"{winners[0]:016x}"}


def test_processes_racing_for_two_gpus_get_distinct_ones(url):
    got = race(url, "gpu")
    taken = sorted(indices for _, indices, _ in got if indices is not None)
    assert taken == [(0,), (1,)]
    assert sorted(h.gpu_indices for h in Holdings(url).list(kind=WORKSPACE)) == [(0,), (1,)]

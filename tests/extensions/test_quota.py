"""One quota for workspaces and jobs, through the real jobs service (a scripted cluster).

Jobs that fit the project's quota but not right now are accepted and wait in the
project's queue; they start one after the other as the quota frees up, in the
order they were submitted, and their explanations say their place.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from spawner.holdings import JOB, WORKSPACE, Holding, Holdings
from spawner.resources import Resources

from .jobs_service import TOKEN, JobsService, running
from .scripted_backend import Plan

JOBS = 8
QUOTA = {
    "projects": {
        "default": {"members": ["alice"], "quota": {"cpus": 1}},
        "vision": {"members": ["alice"]},  # the pytorch template's project
    }
}
HEADERS = {"Authorization": f"token {TOKEN}"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[JobsService]:
    with running(tmp_path, QUOTA) as started:
        started.backend.watch_interval = 0.05  # states seen within 50 ms, so the run takes seconds
        yield started


def submit(service: JobsService, index: int) -> requests.Response:
    body = {"code": f"print({index})", "project": "default", "cpus": 1, "name": f"q{index}"}
    return requests.post(service.api_url + "api/jobs", json=body, headers=HEADERS, timeout=30)


def explain(service: JobsService, job_id: str) -> dict[str, Any]:
    answer = requests.get(f"{service.api_url}api/jobs/{job_id}/explain", headers=HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


class Sampler:
    """What the service records as running, and how many jobs hold quota, every 10 ms."""

    def __init__(self, service: JobsService) -> None:
        self.service = service
        self.running: list[int] = []
        self.holding: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        ctx = self.service.ctx
        while not self._stop.is_set():
            jobs = self.service.call(lambda: ctx.store.list(limit=100))
            self.running.append(sum(job.state.value == "running" for job in jobs))
            self.holding.append(len(self.service.call(lambda: ctx.supervisor.holdings.holders(JOB))))
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    now = most = 0
    for _, step in events:  # an end sorts before a start at the same instant: touching is not overlap
        now += step
        most = max(most, now)
    return most


def test_eight_concurrent_submissions_against_a_quota_of_one_run_one_at_a_time(service: JobsService) -> None:
    # the first job to start runs long enough for every other one to be explained while it waits
    service.plans.extend([Plan(startup=1.5, lines=["[worker-0] first"])])
    service.plans.extend(Plan(startup=0.1, lines=[f"[worker-0] {i}"]) for i in range(1, JOBS))
    sampler = Sampler(service)
    started = time.monotonic()
    with ThreadPoolExecutor(JOBS) as pool:
        answers = list(pool.map(lambda i: submit(service, i), range(JOBS)))
    assert [a.status_code for a in answers] == [201] * JOBS, [a.text for a in answers]
    ids = [a.json()["id"] for a in answers]

    # while the first runs, the other seven wait in the project's queue, each knowing its place
    service.wait_for(lambda: len(service.backend.scripts) == 1)
    (first,) = service.backend.scripts
    waiting = [job_id for job_id in ids if job_id != first]
    told = {job_id: explain(service, job_id) for job_id in waiting}
    assert service.backend.scripts[first].ended_at is None, "explained while the first still ran"
    places = []
    for answer in told.values():
        assert answer["state"] == "pending"
        summary = answer["summary"]
        assert summary.startswith(
            "The job is waiting for project default's quota: 1 of 1 CPUs held by 1 job; "
        ), summary
        places.append(summary.removesuffix(" in the project's queue.").rsplit("; ", 1)[1])
    assert sorted(places) == ["1st", "2nd", "3rd", "4th", "5th", "6th", "7th"]

    service.wait_for(lambda: all(job.state == "succeeded" for job in service.jobs), timeout=60)
    took = time.monotonic() - started
    sampler.stop()

    scripts = service.backend.scripts
    ran = [(s.started_at, s.ended_at) for s in scripts.values()]
    assert all(start is not None and end is not None for start, end in ran)
    on_cluster = most_at_once(ran)
    # the service's own record: running to succeeded, from each job's transitions
    recorded = []
    for job_id in ids:
        transitions = service.call(partial(service.ctx.store.transitions, job_id))
        times = {state: at.timestamp() for state, _, at in transitions}
        recorded.append((times["running"], times["succeeded"]))
    in_store = most_at_once(recorded)
    order = sorted(scripts, key=lambda job_id: scripts[job_id].started_at or 0)
    created = [job.id for job in sorted((j.record for j in service.jobs), key=lambda job: job.created)]
    print(
        f"\n{JOBS} jobs against a quota of 1 CPU: all {JOBS} accepted, all succeeded in {took:.1f} s; "
        f"at most {on_cluster} at once on the cluster, {in_store} running at once in the service's "
        f"records, {max(sampler.running)} running and {max(sampler.holding)} holding quota in "
        f"{len(sampler.running)} samples; queue places told: {', '.join(sorted(places))}"
    )
    assert on_cluster == 1 and in_store == 1
    assert max(sampler.running) == 1 and max(sampler.holding) == 1
    assert order == created, "started in the order they were submitted"
    assert service.call(lambda: service.ctx.supervisor.holdings.holders(JOB)) == set()


def test_a_running_workspace_makes_a_job_wait_until_it_stops(service: JobsService) -> None:
    # alice's workspace holds the project's only CPU, recorded as the hub's ledger records it
    holdings = Holdings(service.config.database_url)
    holdings.reserve(Holding(WORKSPACE, "alice", "alice", "default", Resources(1, 2**30, 0)))
    answer = submit(service, 0)
    assert answer.status_code == 201, answer.text
    job_id = answer.json()["id"]
    time.sleep(0.5)  # several admission rounds
    assert service.backend.scripts == {}
    assert explain(service, job_id)["summary"] == (
        "The job is waiting for project default's quota: 1 of 1 CPUs held by 1 workspace; "
        "1st in the project's queue."
    )
    holdings.release(WORKSPACE, "alice")  # the workspace stopped
    service.wait_for(lambda: service.jobs[0].state == "succeeded", timeout=10)


def test_a_job_larger_than_the_whole_quota_is_refused(service: JobsService) -> None:
    body = {"code": "print(1)", "project": "default", "cpus": 1, "workers": 2}
    answer = requests.post(service.api_url + "api/jobs", json=body, headers=HEADERS, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "Project 'default' has a quota of 1 CPUs, and this job asks for 2 in all: it could never start."
    )
    assert answer.json()["field"] == "cpus"


def test_a_group_the_hub_cannot_answer_is_asked_for_again_only_after_a_while(service: JobsService) -> None:
    def quota(name: str) -> Any:
        assert service._loop is not None
        return asyncio.run_coroutine_threadsafe(service.ctx.quota(name), service._loop).result(10)

    assert quota("default") is not None
    asked = len(service.hub.asked)
    assert quota("gone") is None  # no such group (deleted since): the hub says 404
    assert quota("gone") is None
    assert len(service.hub.asked) == asked + 1, "not asked again at once (admission asks every round)"

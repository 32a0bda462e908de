"""The supervisor against a small in-process backend (a real implementation of the interface)."""

import asyncio
import time

from services.jobs.backends.base import Backend, BackendState, BackendUnavailable, Diagnosis
from services.jobs.logs import JobLogs
from services.jobs.models import Job, JobSpec, JobState, Observation
from services.jobs.payloads import Payloads
from services.jobs.store import JobStore
from services.jobs.supervisor import Supervisor
from tests.unit.jobs.test_store import spec


class SlowBackend(Backend):
    """Takes a while to accept a submission, and records what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []
        self.cancelled: list[str] = []

    async def submit(self, spec: JobSpec) -> BackendState:
        await asyncio.sleep(0.2)
        self.submitted.append(spec.id)
        return {}

    async def cancel(self, job: Job) -> None:
        self.cancelled.append(job.id)

    async def status(self, job: Job) -> Observation:
        return Observation(JobState.RUNNING)

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        return []


def supervised(tmp_path, store: JobStore, backend: Backend, job_spec: JobSpec) -> tuple[Supervisor, Job]:
    """A supervisor, and a job accepted the way the service accepts one (payload, then record)."""
    payloads = Payloads(tmp_path / "jobs")
    payloads.save(job_spec.id, job_spec.code, job_spec.exports)
    return Supervisor(store, backend, JobLogs(tmp_path / "jobs"), payloads), store.add(job_spec)


def test_a_job_cancelled_while_being_submitted_is_cancelled_on_the_cluster(tmp_path):
    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        backend = SlowBackend()
        supervisor, job = supervised(tmp_path, store, backend, spec("a" * 16))
        submitting = asyncio.ensure_future(supervisor.tick())
        await asyncio.sleep(0.05)  # the submission is on its way
        stored = store.get(job.id)
        assert stored is not None
        cancelled = await supervisor.cancel(stored, by="alice")
        assert cancelled.state == JobState.CANCELLED
        await submitting
        assert backend.submitted == [job.id]
        assert backend.cancelled == [job.id], "the cluster is told to stop what it just accepted"
        stored = store.get(job.id)
        assert stored is not None and stored.state == JobState.CANCELLED

    asyncio.run(scenario())


def test_a_job_cancelled_before_submission_never_reaches_the_cluster(tmp_path):
    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        backend = SlowBackend()
        supervisor, job = supervised(tmp_path, store, backend, spec("b" * 16))
        await supervisor.cancel(job, by="alice")
        await supervisor.tick()
        assert backend.submitted == [] and backend.cancelled == []

    asyncio.run(scenario())


def stored(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    assert job is not None
    return job


class NeverReady(SlowBackend):
    """A cluster that never comes up, and says why."""

    @property
    def ready(self) -> bool:
        return False

    async def diagnose(self, job: Job) -> Diagnosis:
        return Diagnosis(waiting_for="the local Ray cluster, which failed to start (port taken)")


def test_a_job_pending_past_its_deadline_fails_saying_what_it_waited_for(tmp_path):
    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        backend = NeverReady()
        supervisor, job = supervised(tmp_path, store, backend, spec("c" * 16))
        supervisor.max_pending = 0.3
        await supervisor.tick()
        assert stored(store, job.id).state == JobState.PENDING
        await asyncio.sleep(0.4)
        await supervisor.tick()
        failed = stored(store, job.id)
        assert failed.state == JobState.FAILED
        assert failed.reason == (
            "still pending after 0.3 s, the most a job may wait "
            "(waiting for the local Ray cluster, which failed to start (port taken))"
        )
        assert backend.submitted == [] and backend.cancelled == []

    asyncio.run(scenario())


class Flaky(SlowBackend):
    """Submits one job fine and fails every call about another."""

    def __init__(self) -> None:
        super().__init__()
        self.bad = "e" * 16

    async def submit(self, spec: JobSpec) -> BackendState:
        if spec.id == self.bad:
            raise RuntimeError("the cluster lost this one")
        return await super().submit(spec)

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        if job.id == self.bad:
            raise RuntimeError("cannot read its logs")
        return ["[worker-0] fine"] if final else []


def test_a_job_whose_backend_calls_fail_does_not_hold_up_another(tmp_path):
    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        backend = Flaky()
        supervisor, bad = supervised(tmp_path, store, backend, spec(backend.bad))
        good = store.add(spec("f" * 16))
        supervisor.payloads.save(good.id, "print(1)", None)
        await supervisor.tick()
        assert backend.submitted == [good.id]
        assert stored(store, good.id).submitted and not stored(store, bad.id).submitted
        assert supervisor._tracked[bad.id].failures == 1, "the failing job is backed off"
        supervisor.observe(good.id, Observation(JobState.SUCCEEDED, exit_code=0))
        assert stored(store, good.id).state == JobState.SUCCEEDED


class UnrulyBackend(Backend):
    """One job per misbehaviour of `logs` and `status`, and one well-behaved job beside them."""

    watch_interval = 0.02
    RAISES_LOGS, HANGS_LOGS, RAISES_STATUS, HANGS_STATUS, GOOD = (
        "a" * 16,
        "b" * 16,
        "c" * 16,
        "d" * 16,
        "e" * 16,
    )

    def __init__(self) -> None:
        super().__init__()
        self.good_lines = [f"[worker-0] line {i}" for i in range(5)]
        self.handed = 0

    async def submit(self, spec: JobSpec) -> BackendState:
        return {}

    async def cancel(self, job: Job) -> None:
        pass

    async def status(self, job: Job) -> Observation:
        if job.id == self.RAISES_STATUS:
            raise RuntimeError("status broke")
        if job.id == self.HANGS_STATUS:
            await asyncio.Event().wait()
        if job.id == self.GOOD:
            done = self.handed == len(self.good_lines)
            return Observation(
                JobState.SUCCEEDED if done else JobState.RUNNING, exit_code=0 if done else None
            )
        return Observation(JobState.SUCCEEDED, exit_code=0)  # the jobs whose logs misbehave end at once

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        if job.id == self.RAISES_LOGS:
            raise RuntimeError("logs broke")
        if job.id == self.HANGS_LOGS:
            await asyncio.Event().wait()
        if job.id == self.GOOD and self.handed < len(self.good_lines):
            self.handed += 1
            return self.good_lines[self.handed - 1 : self.handed]
        return []


def test_a_job_whose_backend_calls_raise_or_hang_never_holds_up_another(tmp_path, monkeypatch):
    monkeypatch.setattr("services.jobs.supervisor.MAX_BACKOFF", 0.05)
    monkeypatch.setattr(UnrulyBackend, "final_grace", 0.2)

    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        backend = UnrulyBackend()
        payloads, logs = Payloads(tmp_path / "jobs"), JobLogs(tmp_path / "jobs")
        ids = [
            backend.RAISES_LOGS,
            backend.HANGS_LOGS,
            backend.RAISES_STATUS,
            backend.HANGS_STATUS,
            backend.GOOD,
        ]
        for job_id in ids:
            payloads.save(job_id, "print(1)", None)
            store.add(spec(job_id))
        supervisor = Supervisor(store, backend, logs, payloads)

        def get(job_id: str) -> Job:
            job = store.get(job_id)
            assert job is not None
            return job

        supervisor.start()
        try:
            for _ in range(200):
                good = get(backend.GOOD)
                raising = get(backend.RAISES_LOGS)
                if good.log_complete and raising.log_complete:
                    break
                await asyncio.sleep(0.05)
            assert good.state == JobState.SUCCEEDED and good.log_complete, good
            assert logs[backend.GOOD].read() == backend.good_lines
            # an ended job whose last lines never come is closed, and says so
            assert raising.state == JobState.SUCCEEDED and raising.log_complete
            assert logs[backend.RAISES_LOGS].read() == [
                "[lavahub] the last lines of this job could not be copied"
            ]
            assert get(backend.HANGS_LOGS).state == JobState.SUCCEEDED  # observed, its log still hanging
            assert get(backend.RAISES_STATUS).state == JobState.PENDING, "never observed"
            assert get(backend.HANGS_STATUS).state == JobState.PENDING, "never observed"
        finally:
            await supervisor.stop()
        print(
            f"{len(ids)} jobs: the good one succeeded with {len(backend.good_lines)} lines beside 4 unruly ones"
        )

    asyncio.run(scenario())


class Unavailable(SlowBackend):
    """A cluster that answers but cannot take jobs yet."""

    async def submit(self, spec: JobSpec) -> BackendState:
        raise BackendUnavailable("no agent yet")


def test_a_cluster_that_cannot_take_a_job_yet_is_asked_less_and_less_often(tmp_path):
    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        supervisor, job = supervised(tmp_path, store, Unavailable(), spec("9" * 16))
        waits = []
        for _ in range(3):
            tracked = supervisor._track(job.id)
            tracked.retry_at = 0  # ask now, whatever the wait was
            await supervisor.tick()
            waits.append(tracked.retry_at - time.monotonic())
        assert waits[1] > waits[0] + 0.3 and waits[2] > waits[1] + 0.6, f"the waits double: {waits}"
        assert stored(store, job.id).state == JobState.PENDING

    asyncio.run(scenario())


class HandingOverBackend(SlowBackend):
    """Hands its lines over a moment after it was asked, its cursor moved from then on
    (as the Volcano backend's take, or the Ray backend's file tail in a thread)."""

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        await asyncio.sleep(0.2)
        return ["[worker-0] line 5"]


def test_lines_being_handed_over_when_the_service_stops_are_kept(tmp_path):
    async def scenario():
        store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        supervisor, job = supervised(tmp_path, store, HandingOverBackend(), spec("c" * 16))
        store.update(job.id, submitted=True)
        submitted = store.get(job.id)
        assert submitted is not None
        copying = asyncio.ensure_future(supervisor._copy_logs(submitted, final=False))
        await asyncio.sleep(0.05)  # asked, not answered yet
        copying.cancel()  # the service stops
        try:
            await copying
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the stop was swallowed")
        assert supervisor.logs[job.id].read() == ["[worker-0] line 5"]

    asyncio.run(scenario())

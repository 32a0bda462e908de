"""The supervisor against a small in-process backend (a real implementation of the interface)."""

import asyncio

from services.jobs.backends.base import Backend, BackendState, Diagnosis
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

    asyncio.run(scenario())

"""The supervisor against a small in-process backend (a real implementation of the interface)."""

import asyncio

from services.jobs.backends.base import Backend, BackendState
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

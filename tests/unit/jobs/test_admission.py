"""The supervisor admits each project's jobs to its quota in submission order; the quota is the
one the hub's workspaces count against too (`spawner.holdings`)."""

import asyncio
from dataclasses import replace

from services.jobs.backends.base import Backend, BackendState
from services.jobs.explain import explain
from services.jobs.logs import JobLogs
from services.jobs.models import Job, JobSpec, JobState, Observation
from services.jobs.payloads import Payloads
from services.jobs.store import JobStore
from services.jobs.supervisor import Supervisor
from spawner.holdings import JOB, WORKSPACE, Holding
from spawner.resources import Quota, Resources
from tests.unit.jobs.test_store import spec

GI = 2**30


class Instant(Backend):
    """Takes every job at once and runs it until told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.submitted: list[str] = []

    async def submit(self, spec: JobSpec) -> BackendState:
        self.submitted.append(spec.id)
        return {}

    async def cancel(self, job: Job) -> None:
        pass

    async def status(self, job: Job) -> Observation:
        return Observation(JobState.RUNNING)

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        return []


class Setup:
    def __init__(self, tmp_path, quotas):
        self.store = JobStore(f"sqlite:///{tmp_path / 'db.sqlite'}")
        self.backend = Instant()
        self.payloads = Payloads(tmp_path / "jobs")
        self.quotas = quotas

        async def quota_of(project: str) -> Quota | None:
            return self.quotas.get(project)

        self.supervisor = Supervisor(
            self.store, self.backend, JobLogs(tmp_path / "jobs"), self.payloads, quota_of=quota_of
        )
        self.holdings = self.supervisor.holdings

    def submit(self, job_id: str, workers: int, user: str = "alice", project: str = "default") -> Job:
        """A job of `workers` x 1 CPU, accepted as the service accepts one."""
        job_spec = replace(spec(job_id, user, project), workers=workers)
        self.payloads.save(job_id, job_spec.code, None)
        return self.store.add(job_spec)

    def state(self, job_id: str) -> JobState:
        job = self.store.get(job_id)
        assert job is not None
        return job.state

    def explained(self, job_id: str) -> str:
        job = self.store.get(job_id)
        assert job is not None
        waits = self.supervisor.quota_wait(job, self.quotas.get(job.project))
        return explain(job, diagnosis=None, ahead=[], failing_lines=[], quota=waits)["summary"]


A, B, C, D = "a" * 16, "b" * 16, "c" * 16, "d" * 16


def test_the_head_of_a_projects_queue_blocks_the_jobs_behind_it(tmp_path):
    async def scenario():
        s = Setup(tmp_path, {"default": Quota(cpus=4), "vision": Quota(cpus=4)})
        s.submit(A, 2)
        s.submit(B, 3)  # does not fit beside A
        s.submit(C, 2)  # would fit beside A, but came after B
        s.submit(D, 4, project="vision")  # another project's queue is its own
        await s.supervisor.tick()
        assert s.backend.submitted == [A, D]
        assert s.holdings.holders(JOB) == {A, D}
        assert s.explained(B) == (
            "The job is waiting for project default's quota: 2 of 4 CPUs held by 1 job; "
            "1st in the project's queue."
        )
        assert s.explained(C).endswith("2 of 4 CPUs held by 1 job; 2nd in the project's queue.")
        s.supervisor.observe(A, Observation(JobState.SUCCEEDED, exit_code=0))
        assert A not in s.holdings.holders(JOB), "an ended job's share is released at once"
        await s.supervisor.tick()
        assert s.backend.submitted == [A, D, B]
        assert s.explained(C).endswith("3 of 4 CPUs held by 1 job; 1st in the project's queue.")
        cancelled = await s.supervisor.cancel(s.store.get(B), by="alice")  # type: ignore[arg-type]
        assert cancelled.state == JobState.CANCELLED and B not in s.holdings.holders(JOB)
        await s.supervisor.tick()
        assert s.backend.submitted == [A, D, B, C]

    asyncio.run(scenario())


def test_a_running_workspace_makes_a_job_wait_for_the_projects_quota(tmp_path):
    async def scenario():
        s = Setup(tmp_path, {"default": Quota(cpus=2)})
        # alice's workspace holds 1.5 CPUs, recorded as the hub's ledger records it
        workspace = Holding(WORKSPACE, "alice", "alice", "default", Resources(1.5, 4 * GI, 0))
        s.holdings.reserve(workspace, s.quotas["default"])
        s.submit(A, 1)
        await s.supervisor.tick()
        assert s.backend.submitted == [] and s.state(A) == JobState.PENDING
        assert s.explained(A) == (
            "The job is waiting for project default's quota: 1.5 of 2 CPUs held by 1 workspace; "
            "1st in the project's queue."
        )
        s.holdings.release(WORKSPACE, "alice")  # the workspace stopped
        await s.supervisor.tick()
        assert s.backend.submitted == [A]
        job = s.store.get(A)
        assert job is not None and s.supervisor.quota_wait(job, s.quotas["default"]) is None

    asyncio.run(scenario())


def test_a_job_that_no_longer_fits_a_lowered_quota_fails_saying_so(tmp_path):
    async def scenario():
        s = Setup(tmp_path, {"default": Quota(cpus=1)})  # lowered after the job was accepted
        s.submit(A, 2)
        await s.supervisor.tick()
        job = s.store.get(A)
        assert job is not None and job.state == JobState.FAILED
        assert job.reason == (
            "could not start: Project 'default' has a quota of 1 CPUs, and this job asks for 2 in all: "
            "it could never start."
        )

    asyncio.run(scenario())


def test_a_quota_that_cannot_be_read_keeps_the_queue_waiting(tmp_path):
    async def scenario():
        s = Setup(tmp_path, {})  # the hub does not answer for "default"
        s.submit(A, 1)
        await s.supervisor.tick()
        assert s.backend.submitted == [] and s.state(A) == JobState.PENDING
        assert "quota, which could not be read from the hub just now; 1st in" in s.explained(A)

    asyncio.run(scenario())


def test_a_restarted_service_reconciles_job_holdings_with_its_store(tmp_path):
    async def scenario():
        s = Setup(tmp_path, {"default": Quota(cpus=8)})
        for job_id in (A, B, C):
            s.submit(job_id, 1)
        s.holdings.reserve(Holding(JOB, A, "alice", "default", Resources(1, GI, 0)))  # still running
        s.holdings.reserve(Holding(JOB, B, "alice", "default", Resources(1, GI, 0)))  # ended meanwhile
        s.holdings.reserve(Holding(JOB, D, "alice", "default", Resources(1, GI, 0)))  # unknown here
        s.store.transition(B, JobState.SUCCEEDED)
        s.store.update(C, submitted=True)  # on the cluster, from before holdings were kept
        s.supervisor.reconcile()
        assert s.holdings.holders(JOB) == {A, C}

    asyncio.run(scenario())

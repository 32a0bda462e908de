"""A job backend for tests: each job follows a `Plan` instead of running its code.

It implements the backend seam (`services.jobs.backends.base.Backend`) the way
a cluster would answer it: `submit` starts the job's script, `status` reports
where the script is, `logs` hands over each line once, `cancel` stops it,
`diagnose` states why it pends and `result` returns rank 0's value. The real
supervisor, store and logs of the jobs service do everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

from services.jobs.backends.base import Backend, BackendState, Capabilities, Diagnosis
from services.jobs.models import Job, JobSpec, JobState, Observation

NO_RESULT = object()


@dataclass
class Plan:
    """What the next submitted job does."""

    pending: float = 0.0  # seconds in `pending` once submitted
    diagnosis: Diagnosis = field(default_factory=Diagnosis)  # why it pends, as the cluster says
    startup: float = 0.2  # seconds from running to the first line (the workers' Python starting)
    lines: list[str] = field(default_factory=list)  # written one by one once running
    interval: float = 0.0  # seconds between two lines
    outcome: str | None = "succeeded"  # None: runs until cancelled
    exit_code: int | None = 0
    reason: str | None = None
    failed_worker: int | None = None  # whose last lines explain a failure
    result: Any = NO_RESULT  # the value rank 0 sends back


@dataclass
class Script:
    """One submitted job going through its plan."""

    spec: JobSpec
    plan: Plan
    state: JobState = JobState.PENDING
    written: list[str] = field(default_factory=list)
    handed: int = 0  # lines `logs` has handed over
    started_at: float | None = None  # time.monotonic() when it started running
    ended_at: float | None = None  # time.monotonic() when it ended
    task: asyncio.Task[None] | None = None


class ScriptedBackend(Backend):
    """Runs every job by its plan: the next of `plans` when it is submitted (a default one if none)."""

    capabilities = Capabilities(frameworks=("python", "pytorch", "ray"), driver_frameworks=frozenset({"ray"}))
    watch_interval = 0.05

    def __init__(self, plans: list[Plan]) -> None:
        super().__init__()
        self.plans = plans
        self.scripts: dict[str, Script] = {}

    async def submit(self, spec: JobSpec) -> BackendState:
        plan = self.plans.pop(0) if self.plans else Plan()
        script = self.scripts[spec.id] = Script(spec, plan)
        script.task = asyncio.ensure_future(self._run(script))
        return {"script": len(self.scripts)}

    async def _run(self, script: Script) -> None:
        plan = script.plan
        await asyncio.sleep(plan.pending)
        script.state, script.started_at = JobState.RUNNING, time.monotonic()
        for number, line in enumerate(plan.lines):
            await asyncio.sleep(plan.interval if number else plan.startup)
            script.written.append(line)
        if plan.outcome is not None:
            script.state, script.ended_at = JobState(plan.outcome), time.monotonic()

    async def cancel(self, job: Job) -> None:
        script = self.scripts.get(job.id)
        if script is None or script.state.done:
            return
        if script.task is not None:
            script.task.cancel()
        script.state, script.ended_at = JobState.CANCELLED, time.monotonic()

    async def status(self, job: Job) -> Observation:
        script = self.scripts.get(job.id)
        if script is None:
            return Observation(JobState.FAILED, reason="the cluster does not know this job")
        plan = script.plan
        if script.state in (JobState.SUCCEEDED, JobState.FAILED):
            failed = script.state == JobState.FAILED
            return Observation(
                script.state,
                reason=plan.reason,
                exit_code=plan.exit_code,
                failed_worker=plan.failed_worker if failed else None,
            )
        return Observation(script.state)

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        script = self.scripts.get(job.id)
        if script is None:
            return []
        new = script.written[script.handed :]
        script.handed += len(new)
        return new

    async def result(self, job: Job) -> bytes | None:
        script = self.scripts.get(job.id)
        if script is None or script.state != JobState.SUCCEEDED or script.plan.result is NO_RESULT:
            return None
        return cloudpickle.dumps(script.plan.result)

    async def diagnose(self, job: Job) -> Diagnosis:
        script = self.scripts.get(job.id)
        return script.plan.diagnosis if script is not None else Diagnosis()

    async def cleanup(self) -> None:
        tasks = [s.task for s in self.scripts.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

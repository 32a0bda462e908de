"""The service's loop over unfinished jobs: submit, follow logs, record states, enforce timeouts.

Everything it learns goes into the store and the service's logs, so a restarted
service (or a client that reconnects) finds the same record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from .backends.base import Backend, BackendUnavailable
from .logs import JobLogs
from .models import Job, JobState
from .store import JobStore

log = logging.getLogger(__name__)

LOG_INTERVAL = 0.1  # how often worker output is copied: the added latency of a printed line
STATUS_INTERVAL = 0.5  # how often each job's state is asked of the backend
FINAL_GRACE = 1.0  # after a job ends, how long its last lines may still arrive
SUBMIT_TRIES = 12  # a cluster that keeps refusing for about a minute fails the job


class Supervisor:
    def __init__(self, store: JobStore, backend: Backend, logs: JobLogs):
        self.store = store
        self.backend = backend
        self.logs = logs
        self._last_status: dict[str, float] = {}
        self._finishing: dict[str, float] = {}
        self._tries: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # logs of jobs that ended while the service was down still need their last lines
        for job in self.store.list(limit=1000):
            if job.state.done and not job.log_complete:
                self._finishing[job.id] = time.monotonic()
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("job supervision failed; continuing")
            await asyncio.sleep(LOG_INTERVAL)

    async def tick(self) -> None:
        for job in self.store.unfinished():
            await self._supervise(job)
        for job_id, since in list(self._finishing.items()):
            job = self.store.get(job_id)
            if job is None:
                del self._finishing[job_id]
                continue
            final = time.monotonic() - since >= FINAL_GRACE
            await self._copy_logs(job, final=final)
            if final:
                self.logs[job.id].finish()
                self.store.update(job.id, log_complete=True)
                del self._finishing[job_id]

    async def _supervise(self, job: Job) -> None:
        if not job.submitted:
            if self.backend.ready and time.monotonic() >= self._retry_at.get(job.id, 0):
                await self._submit(job)
            return
        await self._copy_logs(job, final=False)
        now = time.monotonic()
        if now - self._last_status.get(job.id, 0) >= STATUS_INTERVAL:
            self._last_status[job.id] = now
            seen = await self.backend.status(job)
            if seen.state != job.state:
                if seen.failed_worker is not None:
                    self.store.update(job.id, failed_worker=seen.failed_worker)
                job = self.store.transition(job.id, seen.state, reason=seen.reason, exit_code=seen.exit_code)
                if job.state.done:
                    self.finished(job)
                    return
        running_for = (datetime.now(UTC) - job.started).total_seconds() if job.started else 0
        if job.state == JobState.RUNNING and running_for > job.timeout:
            await self.backend.cancel(job)
            self.finished(self.store.transition(job.id, JobState.FAILED, reason="timeout"))

    async def _submit(self, job: Job) -> None:
        try:
            await self.backend.submit(job)
        except BackendUnavailable as e:
            tries = self._tries.get(job.id, 0) + 1
            if tries > SUBMIT_TRIES:
                self.finished(self.store.transition(job.id, JobState.FAILED, reason=f"could not start: {e}"))
                return
            self._tries[job.id] = tries
            self._retry_at[job.id] = time.monotonic() + min(2.0**tries / 4, 10)
            log.info("Job %s: the cluster cannot take it yet (%s); retrying", job.id, e)
            return
        except Exception as e:
            log.exception("Submitting job %s failed", job.id)
            self.finished(self.store.transition(job.id, JobState.FAILED, reason=f"could not start: {e}"))
            return
        self._tries.pop(job.id, None)
        self._retry_at.pop(job.id, None)
        self.store.update(job.id, submitted=True)
        current = self.store.get(job.id)
        if current is not None and current.state.done:
            # cancelled while the submission was on its way: the cluster must not run it
            await self.backend.cancel(current)

    async def cancel(self, job: Job, by: str) -> Job:
        if job.state.done:
            return job
        if job.submitted:
            await self.backend.cancel(job)
        job = self.store.transition(job.id, JobState.CANCELLED, reason=f"cancelled by {by}")
        self.finished(job)
        return job

    def finished(self, job: Job) -> None:
        self._last_status.pop(job.id, None)
        self._finishing.setdefault(job.id, time.monotonic())

    async def _copy_logs(self, job: Job, *, final: bool) -> None:
        if not job.submitted:
            return
        self.logs[job.id].append(await self.backend.logs(job, self.logs.state_dir(job.id), final=final))

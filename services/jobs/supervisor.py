"""The service's loop over unfinished jobs: submit, follow logs, record states, enforce timeouts.

Each job has its own record here (`Tracked`) and its own step in flight: a job
whose backend call hangs or raises is retried with a backoff and never delays
another job. Everything learnt goes into the store and the service's logs, so a
restarted service (or a client that reconnects) finds the same record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .backends.base import Backend, BackendUnavailable, JobRefused
from .logs import JobLogs
from .models import Job, JobSpec, JobState, Observation
from .payloads import Payloads
from .store import JobStore

log = logging.getLogger(__name__)

LOG_INTERVAL = 0.1  # how often worker output is copied: the added latency of a printed line
FINAL_GRACE = 1.0  # after a job ends, how long its last lines may still arrive
SUBMIT_TRIES = 12  # a cluster that keeps refusing for about a minute fails the job
MAX_BACKOFF = 10.0  # seconds: the longest a failing job waits before its next try
LOGS_TIMEOUT = 30.0  # seconds: a backend's `logs` that takes longer counts as a failed step
FINISH_TRIES = 6  # an ended job whose last lines fail this often gets its log closed without them


@dataclass
class Tracked:
    """What the supervisor remembers of one job between rounds (nothing that must survive it)."""

    job_id: str
    failures: int = 0  # consecutive failed steps
    retry_at: float = 0.0  # no step before this (time.monotonic())
    submit_tries: int = 0
    finishing_since: float | None = None  # ended: copying its last lines until FINAL_GRACE
    step: asyncio.Task[None] | None = None

    def back_off(self, attempts: int) -> float:
        """No step for 2**attempts / 4 s (at most MAX_BACKOFF); returns that wait."""
        delay = min(2.0**attempts / 4, MAX_BACKOFF)
        self.retry_at = time.monotonic() + delay
        return delay


def _age(job: Job) -> float:
    return (datetime.now(UTC) - job.created).total_seconds()


class Supervisor:
    def __init__(
        self,
        store: JobStore,
        backend: Backend,
        logs: JobLogs,
        payloads: Payloads,
        *,
        max_pending: float = 24 * 3600,
    ):
        self.store = store
        self.backend = backend
        self.logs = logs
        self.payloads = payloads
        self.max_pending = max_pending  # seconds a job may wait to start
        self._tracked: dict[str, Tracked] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        # logs of jobs that ended while the service was down still need their last lines
        for job in self.store.list(limit=1000):
            if job.state.done and job.submitted and not job.log_complete:
                self._track(job.id).finishing_since = time.monotonic()
        self._tasks = [asyncio.ensure_future(self._rounds()), asyncio.ensure_future(self._watch())]

    async def stop(self) -> None:
        steps = [t.step for t in self._tracked.values() if t.step is not None]
        for task in self._tasks + steps:
            task.cancel()
        for task in self._tasks + steps:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- rounds ----------------------------------------------------------------------------
    async def _rounds(self) -> None:
        while True:
            try:
                self._round()
            except Exception:  # the store itself failed: nothing to isolate, try again shortly
                log.exception("A supervision round failed; continuing")
            await asyncio.sleep(LOG_INTERVAL)

    async def tick(self) -> None:
        """One round, waiting for every step it started (the loop itself never waits)."""
        started = self._round()
        if started:
            await asyncio.wait(started)

    def _round(self) -> list[asyncio.Task[None]]:
        steps = [(job.id, self._supervise) for job in self.store.unfinished()]
        steps += [
            (t.job_id, self._finish) for t in list(self._tracked.values()) if t.finishing_since is not None
        ]
        return [task for job_id, step in steps if (task := self._start(job_id, step)) is not None]

    def _track(self, job_id: str) -> Tracked:
        return self._tracked.setdefault(job_id, Tracked(job_id))

    def _start(self, job_id: str, step: Callable[[Tracked], Awaitable[None]]) -> asyncio.Task[None] | None:
        """Start `step` for the job unless one is in flight or it is backing off."""
        tracked = self._track(job_id)
        if tracked.step is not None and not tracked.step.done():
            return None
        if time.monotonic() < tracked.retry_at:
            return None
        tracked.step = asyncio.ensure_future(self._guarded(tracked, step))
        return tracked.step

    async def _guarded(self, tracked: Tracked, step: Callable[[Tracked], Awaitable[None]]) -> None:
        try:
            await step(tracked)
        except asyncio.CancelledError:
            raise
        except Exception:
            tracked.failures += 1
            delay = tracked.back_off(tracked.failures)
            log.exception("Supervising job %s failed; retrying in %.1f s", tracked.job_id, delay)
        else:
            tracked.failures = 0

    # -- one job ---------------------------------------------------------------------------
    async def _supervise(self, tracked: Tracked) -> None:
        job = self.store.get(tracked.job_id)
        if job is None or job.state.done:
            return
        if job.state == JobState.PENDING and _age(job) > self.max_pending:
            await self._expire(job)
            return
        if not job.submitted:
            if self.backend.ready:
                await self._submit(job, tracked)
            return
        running_for = (datetime.now(UTC) - job.started).total_seconds() if job.started else 0
        if job.state == JobState.RUNNING and running_for > job.timeout:  # before logs, which may hang
            await self.backend.cancel(job)
            self.finished(self.store.transition(job.id, JobState.FAILED, reason="timeout"))
            return
        await self._copy_logs(job, final=False)

    async def _expire(self, job: Job) -> None:
        """A job pending past its deadline fails, saying what it waited for, and frees its place."""
        why = ""
        with contextlib.suppress(Exception):  # the words are a courtesy; the deadline is not
            diagnosis = await self.backend.diagnose(job)
            why = f" (waiting for {diagnosis.waiting_for})" if diagnosis.waiting_for else ""
            if diagnosis.shortfalls:
                why = " (not enough free " + " and ".join(s.resource for s in diagnosis.shortfalls) + ")"
        if job.submitted:
            await self.backend.cancel(job)
        reason = f"still pending after {self.max_pending:g} s, the most a job may wait{why}"
        self.finished(self.store.transition(job.id, JobState.FAILED, reason=reason))

    async def _submit(self, job: Job, tracked: Tracked) -> None:
        spec = self._spec(job)
        if spec is None:
            self.finished(
                self.store.transition(
                    job.id, JobState.FAILED, reason="could not start: its code was not kept; submit it again"
                )
            )
            return
        try:
            state = await self.backend.submit(spec)
        except JobRefused as e:
            self.finished(self.store.transition(job.id, JobState.FAILED, reason=f"could not start: {e}"))
            return
        except Exception as e:
            tracked.submit_tries += 1
            if tracked.submit_tries >= SUBMIT_TRIES:
                reason = str(e) if isinstance(e, BackendUnavailable) else "the backend failed (see the log)"
                self.finished(
                    self.store.transition(job.id, JobState.FAILED, reason=f"could not start: {reason}")
                )
                if not isinstance(e, BackendUnavailable):
                    log.exception("Submitting job %s failed; giving up", job.id)
                return
            if isinstance(e, BackendUnavailable):
                # a successful step resets `failures`: the submissions tried count the wait
                delay = tracked.back_off(tracked.submit_tries)
                log.info(
                    "Job %s: the cluster cannot take it yet (%r); retrying in %.1f s", job.id, str(e), delay
                )
                return
            raise
        tracked.submit_tries = 0
        self.store.update(job.id, submitted=True, backend_state=state)
        current = self.store.get(job.id)
        if current is not None and current.state.done:
            # cancelled while the submission was on its way: the cluster must not run it
            await self.backend.cancel(current)

    def _spec(self, job: Job) -> JobSpec | None:
        record, payload = self.store.spec_of(job.id), self.payloads.load(job.id)
        if record is None or payload is None:
            return None
        return JobSpec.restore(job, record, *payload)

    async def _finish(self, tracked: Tracked) -> None:
        job = self.store.get(tracked.job_id)
        since = tracked.finishing_since
        if job is None or since is None:
            self._tracked.pop(tracked.job_id, None)
            return
        final = time.monotonic() - since >= FINAL_GRACE
        if tracked.failures >= FINISH_TRIES:
            log.error("Job %s: its last lines could not be copied; its log is closed without them", job.id)
            self.logs[job.id].append(["[lavahub] the last lines of this job could not be copied"])
        else:
            await self._copy_logs(job, final=final)
        if final or tracked.failures >= FINISH_TRIES:
            self.logs[job.id].finish()
            self.store.update(job.id, log_complete=True)
            self._tracked.pop(job.id, None)

    # -- observations ----------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            try:
                async for job_id, seen in self.backend.watch(self._watched):
                    try:
                        self.observe(job_id, seen)
                    except Exception:
                        log.exception("Recording what the cluster said of job %s failed", job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Watching the backend failed; watching again")
            await asyncio.sleep(LOG_INTERVAL)

    def _watched(self) -> list[Job]:
        return [job for job in self.store.unfinished() if job.submitted]

    def observe(self, job_id: str, seen: Observation) -> None:
        """Record what the backend saw; an ended job starts its final log copy."""
        job = self.store.get(job_id)
        if job is None or job.state.done:
            return
        if seen.backend_state is not None:
            self.store.update(job_id, backend_state=seen.backend_state)
        if seen.state == job.state:
            return
        if seen.failed_worker is not None:
            self.store.update(job_id, failed_worker=seen.failed_worker)
        job = self.store.transition(job_id, seen.state, reason=seen.reason, exit_code=seen.exit_code)
        if job.state.done:
            self.finished(job)

    # -- requests from the API -------------------------------------------------------------
    async def cancel(self, job: Job, by: str) -> Job:
        if job.state.done:
            return job
        if job.submitted:
            await self.backend.cancel(job)
        job = self.store.transition(job.id, JobState.CANCELLED, reason=f"cancelled by {by}")
        self.finished(job)
        return job

    def finished(self, job: Job) -> None:
        tracked = self._track(job.id)
        if tracked.finishing_since is None:
            tracked.finishing_since = time.monotonic()

    async def _copy_logs(self, job: Job, *, final: bool) -> None:
        """New lines from the backend into the job's log; none once that log is full, but the last."""
        job_log = self.logs[job.id]
        if job.submitted and (final or not job_log.truncated):
            job_log.append(await asyncio.wait_for(self.backend.logs(job, final=final), LOGS_TIMEOUT))

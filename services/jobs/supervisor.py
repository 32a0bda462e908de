"""The service's loop over unfinished jobs: submit, follow logs, record states, enforce timeouts.

Each job has its own record here (`Tracked`) and its own step in flight: a job
whose backend call hangs or raises is retried with a backoff and never delays
another job. Everything learnt goes into the store and the service's logs, so a
restarted service (or a client that reconnects) finds the same record.

A job reaches its backend only once it holds its share of the project's quota
(`spawner.holdings`, shared with the hub's workspaces): each project's pending jobs
are admitted in the order they were submitted, the head of the queue blocking
the rest, and a job's share is released when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from datetime import UTC, datetime

from spawner.errors import PublicError
from spawner.holdings import JOB, WORKSPACE, Holding, Holdings, first_short
from spawner.resources import Quota, Resources

from .backends.base import Backend, BackendUnavailable, JobRefused
from .explain import QuotaWait
from .logs import JobLogs
from .models import Job, JobSpec, JobState, Observation
from .payloads import Payloads
from .spec import check_fits_quota
from .store import JobStore

log = logging.getLogger(__name__)

LOG_INTERVAL = 0.1  # how often worker output is copied: the added latency of a printed line
SUBMIT_TRIES = 12  # a cluster that keeps refusing for about a minute fails the job
MAX_BACKOFF = 10.0  # seconds: the longest a failing job waits before its next try
LOGS_TIMEOUT = 30.0  # seconds: a backend's `logs` that takes longer counts as a failed step
HANDOVER_GRACE = 5.0  # seconds a stopping service waits for lines a backend is handing over
CONCLUDE_WAIT = 1.0  # seconds an ended job's last copy may delay recording its end
FINISH_TRIES = 6  # an ended job whose last lines fail this often gets its log closed without them


@dataclass
class Tracked:
    """What the supervisor remembers of one job between rounds (nothing that must survive it)."""

    job_id: str
    failures: int = 0  # consecutive failed steps
    retry_at: float = 0.0  # no step before this (time.monotonic())
    submit_tries: int = 0
    finishing_since: float | None = None  # ended: copying its last lines for the backend's final_grace
    step: asyncio.Task[None] | None = None

    def back_off(self, attempts: int) -> float:
        """No step for 2**attempts / 4 s (at most MAX_BACKOFF); returns that wait."""
        delay = min(2.0**attempts / 4, MAX_BACKOFF)
        self.retry_at = time.monotonic() + delay
        return delay


def _age(job: Job) -> float:
    return (datetime.now(UTC) - job.created).total_seconds()


def holding(job: Job) -> Holding:
    """What an admitted job holds of its project's quota: all its workers together."""
    return Holding(JOB, job.id, job.user, job.project, job.total)


# a project's quota, as the hub's group says it now; None while it cannot be read
QuotaSource = Callable[[str], Awaitable[Quota | None]]


async def unlimited(project: str) -> Quota | None:
    return Quota()


class Supervisor:
    def __init__(
        self,
        store: JobStore,
        backend: Backend,
        logs: JobLogs,
        payloads: Payloads,
        *,
        max_pending: float = 24 * 3600,
        quota_of: QuotaSource = unlimited,
        holdings: Holdings | None = None,
    ):
        self.store = store
        self.backend = backend
        self.logs = logs
        self.payloads = payloads
        self.max_pending = max_pending  # seconds a job may wait to start
        self.quota_of = quota_of
        self.holdings = holdings or Holdings(store.engine)
        self._tracked: dict[str, Tracked] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        # logs of jobs that ended while the service was down still need their last lines
        for job in self.store.list(limit=1000):
            if job.state.done and job.submitted and not job.log_complete:
                self._track(job.id).finishing_since = time.monotonic()
        self.reconcile()
        self._tasks = [
            asyncio.ensure_future(self._rounds()),
            asyncio.ensure_future(self._watch()),
            asyncio.ensure_future(self._admissions()),
        ]

    def reconcile(self) -> None:
        """Job holdings against the store, after the service was down: a job that ended meanwhile
        (or is unknown) holds nothing; one on the cluster without a holding (from before
        holdings were kept) is recorded, so that it counts."""
        unfinished = self.store.unfinished()
        released = self.holdings.release_all_but(JOB, keep={job.id for job in unfinished})
        if released:
            log.info("Released the quota shares of %d jobs that ended", len(released))
        held = self.holdings.holders(JOB)
        for job in unfinished:
            if job.submitted and job.id not in held:
                self.holdings.reserve(holding(job))

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
        """One admission and one round, waiting for every step it started (the loops never wait)."""
        await self.admit()
        started = self._round()
        if started:
            await asyncio.wait(started)

    def _round(self) -> list[asyncio.Task[None]]:
        held = self.holdings.holders(JOB)
        steps = [(job.id, self._supervise) for job in self.store.unfinished() if self._due(job, held)]
        steps += [
            (t.job_id, self._finish) for t in list(self._tracked.values()) if t.finishing_since is not None
        ]
        return [task for job_id, step in steps if (task := self._start(job_id, step)) is not None]

    def _due(self, job: Job, admitted: Container[str]) -> bool:
        """Whether this round has anything to do for the job: a pending job not yet admitted,
        or on the cluster with no output yet, has nothing until its deadline (a thousand jobs
        waiting in a queue cost a round nothing)."""
        if job.state != JobState.PENDING or _age(job) > self.max_pending:
            return True
        if not job.submitted:
            return job.id in admitted
        return self.backend.may_have_output(job)

    # -- admission: a project's quota, first come first served ----------------------------
    async def _admissions(self) -> None:
        while True:
            try:
                await self.admit()
            except Exception:  # the store or the hub failed: try again shortly
                log.exception("Admitting jobs failed; continuing")
            await asyncio.sleep(LOG_INTERVAL)

    def queues(self) -> dict[str, list[Job]]:
        """Each project's queue: its pending jobs that hold no share of its quota yet, oldest first."""
        held = self.holdings.holders(JOB)
        queues: dict[str, list[Job]] = {}
        for job in self.store.unfinished():
            if job.state == JobState.PENDING and not job.submitted and job.id not in held:
                queues.setdefault(job.project, []).append(job)
        return queues

    async def admit(self) -> None:
        """Admit each project's queued jobs from its head while the project's quota has room.

        The head that does not fit blocks the rest of its project's queue, so a large job is
        never overtaken forever by smaller ones. A job that no longer fits the whole quota
        (lowered since it was accepted) fails, saying so.
        """
        if not self.backend.ready:
            return  # nothing would start: no job holds quota while the cluster cannot take it
        quotas = {project: await self.quota_of(project) for project in self.queues()}
        # no await from here on: the queues admitted from are the ones read here
        for project, queue in self.queues().items():
            quota = quotas.get(project)
            if quota is None:
                continue  # not read from the hub just now: the queue waits
            for job in queue:
                try:
                    check_fits_quota(project, quota, job.total)
                except PublicError as e:
                    reason = f"could not start: {e.message}"
                    self.finished(self.store.transition(job.id, JobState.FAILED, reason=reason))
                    continue
                try:
                    self.holdings.reserve(holding(job), quota)
                except PublicError:
                    break  # the head waits, and the rest of the project's queue behind it
                log.info("Job %s admitted: project %r's quota has room for it", job.id, project)

    def quota_wait(self, job: Job, quota: Quota | None) -> QuotaWait | None:
        """Why a pending job is not admitted yet, as facts for `explain`: None once it holds its share
        (or will at the next admission)."""
        if job.state != JobState.PENDING or job.submitted:
            return None
        queue = [j.id for j in self.queues().get(job.project, [])]
        if job.id not in queue:
            return None
        position = queue.index(job.id) + 1
        if quota is None:
            return QuotaWait(job.project, position)
        held = self.holdings.list(project=job.project)
        used = sum((h.resources for h in held), Resources())
        head = self.store.get(queue[0]) or job
        short = first_short(quota, used, job.total) or first_short(quota, used, head.total)
        if short is None:
            return None
        holders = [h for h in held if short.of(h.resources)]
        return QuotaWait(
            job.project,
            position,
            short,
            workspaces=sum(h.kind == WORKSPACE for h in holders),
            jobs=sum(h.kind == JOB for h in holders),
        )

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
            if self.backend.ready and self.holdings.get(JOB, job.id) is not None:
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
            if diagnosis.waiting_for is None and self.holdings.get(JOB, job.id) is None:
                why = f" (waiting for project {job.project}'s quota)"
            elif diagnosis.shortfalls:
                short = " and ".join(s.resource for s in diagnosis.shortfalls)
                why = f" (not enough free {short})"
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
        final = time.monotonic() - since >= self.backend.final_grace
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
                        if seen.state.done:
                            self._conclude_soon(job_id, seen)
                        else:
                            self.observe(job_id, seen)
                    except Exception:
                        log.exception("Recording what the cluster said of job %s failed", job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Watching the backend failed; watching again")
            await asyncio.sleep(LOG_INTERVAL)

    def _conclude_soon(self, job_id: str, seen: Observation) -> None:
        """The backend saw the job end: copy the lines it has so far first (for at most
        CONCLUDE_WAIT), so that a client that sees `failed` finds the lines that explain it.
        With a step of the job in flight (a copy, most likely), the end is recorded at once."""
        if self._start(job_id, lambda tracked: self._conclude(tracked, seen)) is None:
            self.observe(job_id, seen)

    async def _conclude(self, tracked: Tracked, seen: Observation) -> None:
        job = self.store.get(tracked.job_id)
        if job is None or job.state.done:
            return
        copy = asyncio.ensure_future(self._copy_logs(job, final=False))
        await asyncio.wait({copy}, timeout=CONCLUDE_WAIT)
        self.observe(job.id, seen)
        await copy  # a slow copy goes on as this job's step; its failure counts as the step's

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
        """A job ended (any final state): its quota share is free, its last lines still to copy."""
        self.holdings.release(JOB, job.id)
        tracked = self._track(job.id)
        if tracked.finishing_since is None:
            tracked.finishing_since = time.monotonic()

    async def _copy_logs(self, job: Job, *, final: bool) -> None:
        """New lines from the backend into the job's log; none once that log is full, but the last."""
        job_log = self.logs[job.id]
        if not job.submitted or (job_log.truncated and not final):
            return
        # a backend moves its cursor as it hands lines over: once asked, its answer is kept even
        # when the service stops meanwhile, or a restarted service would never see those lines
        asked = asyncio.ensure_future(self.backend.logs(job, final=final))
        try:
            await asyncio.wait({asked}, timeout=LOGS_TIMEOUT)
        except asyncio.CancelledError:
            await asyncio.wait({asked}, timeout=HANDOVER_GRACE)
            if asked.done() and not asked.cancelled() and asked.exception() is None:
                job_log.append(asked.result() or [])
            asked.cancel()
            raise
        if not asked.done():
            asked.cancel()
            raise TimeoutError(f"the backend gave no logs within {LOGS_TIMEOUT:.0f} s")
        job_log.append(asked.result() or [])

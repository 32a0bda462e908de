"""Jobs and their state transitions in lavahub's database (SQLite by default)."""

from __future__ import annotations

import builtins
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, overload

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, false, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from lavahub.db import Base, make_engine, upgrade
from spawner.resources import Resources

from .models import Job, JobSpec, JobState

# what `JobStore.update` may change: the job's explicit state besides its lifecycle
UPDATABLE = frozenset(
    {"template_version", "queue", "result", "submitted", "log_complete", "failed_worker", "backend_state"}
)


class JobRow(Base):
    __tablename__ = "jobs"
    # a user's jobs, newest first, without sorting them all (GET jobs)
    __table_args__ = (Index("ix_jobs_user_created", "user", "created"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(63))
    user: Mapped[str] = mapped_column(String(255), index=True)
    project: Mapped[str] = mapped_column(String(63), index=True)
    template: Mapped[str] = mapped_column(String(63))
    framework: Mapped[str] = mapped_column(String(16))
    workers: Mapped[int] = mapped_column(Integer)
    cpus: Mapped[float] = mapped_column(Float)
    memory: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer)
    timeout: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    job_dir: Mapped[str] = mapped_column(Text)
    template_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue: Mapped[str] = mapped_column(String(63), default="default", server_default="default")
    result: Mapped[str | None] = mapped_column(String(255), nullable=True)
    submitted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    log_complete: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    failed_worker: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # what the backend needs to run it (image, env, cwd); NULL for jobs from before it was kept
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # opaque to lavahub: what a backend keeps about its job between restarts
    backend_state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class TransitionRow(Base):
    __tablename__ = "job_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp here is UTC
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# the record's fields that are not plain copies of a column
_CONVERTED = {"resources", "state", "created", "started", "finished", "backend_state"}
_COPIED = tuple(f.name for f in fields(Job) if f.name not in _CONVERTED)


def _job(row: JobRow) -> Job:
    return Job(
        **{name: getattr(row, name) for name in _COPIED},
        resources=Resources(cpus=row.cpus, memory=row.memory, gpus=row.gpus),
        state=JobState(row.state),
        created=_utc(row.created) or datetime.now(UTC),
        started=_utc(row.started),
        finished=_utc(row.finished),
        backend_state=dict(row.backend_state or {}),
    )


class JobStore:
    """Jobs and their transitions in the service's database.

    The jobs service is its database's one writer, so the unfinished jobs, which the
    supervisor reads many times a second (a thousand pending jobs are a thousand reads a
    round), are also kept in memory, written through on every change: `get` and
    `unfinished` of an unfinished job read no row.
    """

    def __init__(self, url: str):
        self.engine = make_engine(url)
        upgrade(self.engine)
        self._open: dict[str, Job] | None = None  # id -> unfinished job, oldest first; None: not loaded

    def _kept(self) -> dict[str, Job]:
        if self._open is None:
            jobs = self.list(unfinished=True, limit=100_000)
            self._open = {job.id: job for job in sorted(jobs, key=lambda job: job.created)}
        return self._open

    def _keep(self, job: Job) -> Job:
        """Write a changed job through to the memory of unfinished ones."""
        kept = self._kept()
        if job.state.done:
            kept.pop(job.id, None)
        else:
            kept[job.id] = job
        return job

    def add(self, spec: JobSpec) -> Job:
        now = datetime.now(UTC)
        r = spec.resources
        row = JobRow(
            id=spec.id,
            name=spec.name,
            user=spec.user,
            project=spec.project,
            template=spec.template,
            framework=spec.framework,
            workers=spec.workers,
            cpus=r.cpus,
            memory=r.memory,
            gpus=r.gpus,
            timeout=spec.timeout,
            state=JobState.PENDING.value,
            created=now,
            job_dir=spec.job_dir,
            template_version=spec.template_version,
            queue=spec.queue,
            result=spec.result,
            spec=spec.record(),
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)
            session.add(TransitionRow(job_id=spec.id, state=JobState.PENDING.value, at=now))
            session.flush()
            job = _job(row)
        return self._keep(job)

    def get(self, job_id: str) -> Job | None:
        kept = self._kept().get(job_id)
        if kept is not None:
            return kept
        with Session(self.engine) as session:
            row = session.get(JobRow, job_id)
            return _job(row) if row else None

    def list(
        self,
        *,
        user: str | None = None,
        project: str | None = None,
        state: str | None = None,
        limit: int = 100,
        unfinished: bool = False,
    ) -> builtins.list[Job]:
        query = select(JobRow).order_by(JobRow.created.desc()).limit(limit)
        if user is not None:
            query = query.where(JobRow.user == user)
        if project is not None:
            query = query.where(JobRow.project == project)
        if state is not None:
            query = query.where(JobRow.state == state)
        if unfinished:
            query = query.where(JobRow.state.in_([JobState.PENDING.value, JobState.RUNNING.value]))
        with Session(self.engine) as session:
            return [_job(row) for row in session.scalars(query)]

    def unfinished(self) -> builtins.list[Job]:
        """Pending and running jobs, oldest first."""
        return list(self._kept().values())

    def unfinished_count(self, user: str) -> int:
        """How many of `user`'s jobs are pending or running (from memory: no query per submission)."""
        return sum(job.user == user for job in self._kept().values())

    def transition(
        self, job_id: str, state: JobState, *, reason: str | None = None, exit_code: int | None = None
    ) -> Job:
        """Move a job to `state`; a finished job never changes again."""
        now = datetime.now(UTC)
        with Session(self.engine) as session, session.begin():
            row = session.get_one(JobRow, job_id)
            current = JobState(row.state)
            if current.done or current == state:
                return self._keep(_job(row))
            row.state = state.value
            row.reason = reason if reason is not None else row.reason
            if exit_code is not None:
                row.exit_code = exit_code
            if state == JobState.RUNNING or (
                state.done and row.started is None and state != JobState.CANCELLED
            ):
                row.started = row.started or now
            if state.done:
                row.finished = now
            session.add(TransitionRow(job_id=job_id, state=state.value, reason=reason, at=now))
            job = _job(row)
        return self._keep(job)

    def update(self, job_id: str, **fields: Any) -> None:
        """Set some of a job's explicit columns (see UPDATABLE); its state changes by `transition`."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise TypeError(f"JobStore.update() cannot set {', '.join(sorted(unknown))}")
        with Session(self.engine) as session, session.begin():
            row = session.get(JobRow, job_id)
            if row is None:
                return
            for name, value in fields.items():
                setattr(row, name, value)
            session.flush()
            job = _job(row)
        self._keep(job)

    def spec_of(self, job_id: str) -> dict[str, Any] | None:
        """What the job's backend needs to run it; None for jobs stored before it was kept."""
        with Session(self.engine) as session:
            return session.scalar(select(JobRow.spec).where(JobRow.id == job_id))

    def transitions(self, job_id: str) -> builtins.list[tuple[str, str | None, datetime]]:
        with Session(self.engine) as session:
            rows = session.scalars(
                select(TransitionRow).where(TransitionRow.job_id == job_id).order_by(TransitionRow.id)
            )
            return [(r.state, r.reason, _utc(r.at)) for r in rows]

"""What holds each project's quota (and this machine's GPUs), in lavahub's database.

Running workspaces (the hub) and admitted jobs (the jobs service) count against
one quota per project, so both processes record what they hold here, and
`Holdings.reserve` checks the quota against every holding of the project and
records the new one in one transaction under the database's write lock: two
processes can never both take the last share. The local Ray head records the
GPUs it was offered, so that workspaces are given other GPUs first while it runs.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Float, Integer, String, delete, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, mapped_column

from lavahub.db import Base, locked, make_engine, upgrade

from .resources import Quota, Resources, check_quota, format_cpus, format_memory

WORKSPACE, JOB, CLUSTER = "workspace", "job", "cluster"
KINDS = (WORKSPACE, JOB, CLUSTER)
QUOTA_LOCK_KEY = 0x71756F74  # "quot": PostgreSQL's advisory lock for reservations


class HoldingRow(Base):
    __tablename__ = "holdings"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255), primary_key=True)  # `alice/ws2`, a job id
    user: Mapped[str] = mapped_column(String(255))
    project: Mapped[str] = mapped_column(String(63), index=True)  # "" for the Ray head: no quota
    cpus: Mapped[float] = mapped_column(Float)
    memory: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer)
    gpu_indices: Mapped[list[int]] = mapped_column(JSON)  # which of this machine's GPUs (NVML index)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Holding:
    """One holder's share: a workspace (`alice/ws2`), a job (its id) or the local Ray head."""

    kind: str
    holder: str
    user: str
    project: str
    resources: Resources
    gpu_indices: tuple[int, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.holder)

    @property
    def label(self) -> str:
        """How a quota refusal names it: a workspace as its holder, jobs only by their user."""
        return self.holder if self.kind == WORKSPACE else f"{self.user}'s jobs"


# GPUs held by others (index -> their kind) -> the indices this holder takes, or a PublicError
GpuChoice = Callable[[Mapping[int, str]], Iterable[int]]


def usage(holdings: Iterable[Holding]) -> dict[str, Resources]:
    """What each label holds (a user's jobs together), as `check_quota` names holders."""
    used: dict[str, Resources] = {}
    for h in holdings:
        used[h.label] = used.get(h.label, Resources()) + h.resources
    return used


@dataclass(frozen=True)
class Short:
    """The first resource (GPUs, CPUs, memory) where `asks` does not fit a quota, given what is held."""

    resource: str
    limit: float
    held: float
    asks: float

    def of(self, resources: Resources) -> float:
        """How much of this resource `resources` holds."""
        return {"GPUs": resources.gpus, "CPUs": resources.cpus, "memory": resources.memory}[self.resource]

    def amount(self, value: float) -> str:
        """`value` of this resource as quota messages write it (`1.5`, `8Gi`)."""
        if self.resource == "CPUs":
            return format_cpus(value)
        if self.resource == "memory":
            return format_memory(int(value))
        return f"{value:g}"


def first_short(quota: Quota, held: Resources, asks: Resources) -> Short | None:
    """What does not fit, in the order `check_quota` checks; None when `asks` fits now."""
    checks = (
        ("GPUs", quota.gpus, held.gpus, asks.gpus),
        ("CPUs", quota.cpus, held.cpus, asks.cpus),
        ("memory", quota.memory, held.memory, asks.memory),
    )
    for resource, limit, current, amount in checks:
        if limit is not None and current + amount > limit:
            return Short(resource, limit, current, amount)
    return None


def _holding(row: Any) -> Holding:
    """A `HoldingRow`, or a row of its columns (what a Core query on a connection returns)."""
    return Holding(
        kind=row.kind,
        holder=row.holder,
        user=row.user,
        project=row.project,
        resources=Resources(cpus=row.cpus, memory=row.memory, gpus=row.gpus),
        gpu_indices=tuple(row.gpu_indices or ()),
    )


class Holdings:
    """The holdings table of one database; every process that holds quota opens its own."""

    def __init__(self, url_or_engine: str | Engine):
        self.engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
        upgrade(self.engine)

    def reserve(
        self, holding: Holding, quota: Quota | None = None, *, choose_gpus: GpuChoice | None = None
    ) -> Holding:
        """Check `quota` against all the project's other holdings, choose GPUs, record `holding`.

        One transaction under the write lock, so nothing can change between the check and
        the record. The holder's own earlier holding is replaced, not counted (a restart);
        a refusal (`check_quota`'s or `choose_gpus`'s PublicError) records nothing.
        `quota=None` checks no quota (a workspace restored after a hub restart, the Ray head).
        """
        with self.engine.connect() as connection, locked(connection, QUOTA_LOCK_KEY):
            others = [h for h in self._all(connection) if h.key != holding.key]
            if quota is not None:
                mine = [h for h in others if h.project == holding.project]
                check_quota(holding.project, quota, holding.resources, usage(mine))
            if choose_gpus is not None:
                held = {i: h.kind for h in others for i in h.gpu_indices}
                holding = replace(holding, gpu_indices=tuple(choose_gpus(held)))
            self._put(connection, holding)
        return holding

    def release(self, kind: str, holder: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(delete(HoldingRow).where(HoldingRow.kind == kind, HoldingRow.holder == holder))

    def release_all_but(self, kind: str, keep: Iterable[str]) -> builtins.list[Holding]:
        """Release every holding of `kind` whose holder is not in `keep` (left by a process that
        ended without releasing); returns what was released."""
        keep = set(keep)
        with self.engine.connect() as connection, locked(connection, QUOTA_LOCK_KEY):
            stale = [h for h in self._all(connection) if h.kind == kind and h.holder not in keep]
            for h in stale:
                connection.execute(
                    delete(HoldingRow).where(HoldingRow.kind == kind, HoldingRow.holder == h.holder)
                )
        return stale

    def list(self, *, project: str | None = None, kind: str | None = None) -> builtins.list[Holding]:
        query = select(HoldingRow).order_by(HoldingRow.since, HoldingRow.holder)
        if project is not None:
            query = query.where(HoldingRow.project == project)
        if kind is not None:
            query = query.where(HoldingRow.kind == kind)
        with self.engine.connect() as connection:
            return [_holding(row) for row in connection.execute(query).all()]

    def get(self, kind: str, holder: str) -> Holding | None:
        query = select(HoldingRow).where(HoldingRow.kind == kind, HoldingRow.holder == holder)
        with self.engine.connect() as connection:
            row = connection.execute(query).first()
            return _holding(row) if row is not None else None

    def holders(self, kind: str) -> set[str]:
        with self.engine.connect() as connection:
            return set(connection.scalars(select(HoldingRow.holder).where(HoldingRow.kind == kind)))

    @staticmethod
    def _all(connection: Connection) -> builtins.list[Holding]:
        return [_holding(row) for row in connection.execute(select(HoldingRow)).all()]

    @staticmethod
    def _put(connection: Connection, holding: Holding) -> None:
        kind, holder = holding.key
        connection.execute(delete(HoldingRow).where(HoldingRow.kind == kind, HoldingRow.holder == holder))
        r = holding.resources
        connection.execute(
            insert(HoldingRow).values(
                kind=kind,
                holder=holder,
                user=holding.user,
                project=holding.project,
                cpus=r.cpus,
                memory=r.memory,
                gpus=r.gpus,
                gpu_indices=list(holding.gpu_indices),
                since=datetime.now(UTC),
            )
        )

"""The declarative base and the engine for a database URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import DeclarativeBase

SQLITE_BUSY_TIMEOUT_MS = 30_000  # the hub and both services share one file; writers wait, not fail


class Base(DeclarativeBase):
    """The base of every lavahub row class: one metadata, the one the migrations must match."""


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return Path(parsed.database)
    return None


def make_engine(url: str) -> Engine:
    """An engine for `url`; for SQLite, its folder exists and every connection waits for locks
    and uses write-ahead logging, so readers never block the one writer."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")  # in-memory databases answer "memory"; fine
    finally:
        cursor.close()


@contextmanager
def locked(connection: Connection, key: int) -> Iterator[None]:
    """One transaction that holds the database's write lock (SQLite: `BEGIN IMMEDIATE`) or the
    advisory lock `key` (PostgreSQL) until it is committed, so two processes that each read and
    then write (a migration, a quota reservation) run one after the other, never interleaved."""
    if connection.in_transaction():
        connection.rollback()  # a read's autobegun transaction: the lock must be taken first
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.begin()
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({key})")
    try:
        yield
    except BaseException:
        connection.rollback()
        raise
    connection.commit()

"""Bring a database to the newest revision with Alembic: cheaply when it is there already,
under a lock when it is not (the hub and both services may start on the same file at once)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

from .engine import locked, make_engine, sqlite_file

MIGRATIONS = Path(__file__).with_name("migrations")
# databases made by `create_all` before there were migrations hold the first revision's schema
# (or the part of it that their stores made) and record no revision
UNRECORDED = "0001"
UNRECORDED_TABLES = ("templates", "template_versions", "jobs", "job_transitions")
PG_LOCK_KEY = 0x6C617661  # "lava": one advisory lock for lavahub's migrations


@dataclass(frozen=True)
class Upgrade:
    before: str | None  # None: an empty database
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The newest revision, the one the row classes describe."""
    revision = _scripts().get_current_head()
    assert revision is not None
    return revision


def current(url_or_engine: str | Engine) -> str | None:
    """The database's revision: None for an empty one; `0001` for one from before migrations."""
    path = sqlite_file(url_or_engine) if isinstance(url_or_engine, str) else None
    if path is not None and not path.exists():
        return None  # and asking makes no file
    with _connection(url_or_engine) as connection:
        return _revision(connection)[0]


def upgrade(url_or_engine: str | Engine) -> Upgrade:
    """Run every migration the database lacks, up to `head()`."""
    target = head()
    with _connection(url_or_engine) as connection:
        before, recorded = _revision(connection)
        connection.rollback()
        if recorded and before == target:
            return Upgrade(before, target)
        with locked(connection, PG_LOCK_KEY):
            before, recorded = _revision(connection)  # another process may have just done it
            if not (recorded and before == target):
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        return Upgrade(before, target)


def _revision(connection: Connection) -> tuple[str | None, bool]:
    """The revision and whether the database records it."""
    recorded = MigrationContext.configure(connection).get_current_revision()
    if recorded is not None:
        return recorded, True
    tables = set(inspect(connection).get_table_names())
    return (UNRECORDED if tables & set(UNRECORDED_TABLES) else None), False


@contextmanager
def _connection(url_or_engine: str | Engine) -> Iterator[Connection]:
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        if engine is not url_or_engine:
            engine.dispose()

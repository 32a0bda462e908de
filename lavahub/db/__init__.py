"""lavahub's one database: the declarative base every row class derives from, the engine,
and the migrations that bring a database to the schema those classes describe.

The row classes live next to their stores (`spawner.store`, `services.jobs.store`);
this package imports neither. The schema is only ever changed by a migration
(`lavahub/db/migrations/versions/`), never by `create_all`.
"""

from .engine import Base, locked, make_engine, sqlite_file
from .migrate import Upgrade, current, head, upgrade

__all__ = ["Base", "Upgrade", "current", "head", "locked", "make_engine", "sqlite_file", "upgrade"]

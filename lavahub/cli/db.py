"""`lavahub db upgrade|current`: lavahub's database schema, changed only through migrations."""

from __future__ import annotations

import argparse
from typing import Any

from sqlalchemy.engine import make_url

from lavahub import db
from lavahub.config import load_config

from .args import actions, config_arg

ABOUT = (
    "lavahub's database (templates, jobs) changes only through migrations; `lavahub up` runs them "
    "before the hub starts. Back the database up before upgrading one that holds data."
)


def add_commands(sub: Any) -> None:
    database = actions(sub, "db", help="show or upgrade the database's schema revision", description=ABOUT)
    for name, summary, run in (
        ("upgrade", "run the migrations the database lacks", cmd_db_upgrade),
        ("current", "print the database's revision", cmd_db_current),
    ):
        action = database.add_parser(name, help=summary)
        action.set_defaults(run=run)
        config_arg(action)


def database_label(url: str) -> str:
    """The database's URL as it may be printed (no password)."""
    return make_url(url).render_as_string(hide_password=True)


def describe_upgrade(schema: db.Upgrade) -> str:
    if not schema.changed:
        return f"{schema.after}, up to date"
    return f"{schema.before or 'empty'} -> {schema.after}"


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    url = load_config(args.config).database_url
    print(f"lavahub database: {describe_upgrade(db.upgrade(url))} ({database_label(url)})")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    url = load_config(args.config).database_url
    revision, head = db.current(url), db.head()
    state = "up to date" if revision == head else f"head is {head}; `lavahub db upgrade` gets there"
    print(f"lavahub database: {revision or 'empty'}, {state} ({database_label(url)})")
    return 0

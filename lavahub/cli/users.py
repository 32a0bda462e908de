"""`lavahub users list|reset-password`: who may log in, and a new password for one of them."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lavahub.auth.store import PasswordStore
from lavahub.config import PlatformConfig, load_config
from spawner.errors import PublicError

from .args import actions, config_arg, print_table

ABOUT = (
    "The users who may log in are the config's admins and project members. With auth.type local "
    "each has a password of their own, kept only as a hash in lavahub's database; reset-password "
    "makes a new one (shown once) when a user has lost theirs."
)


def add_commands(sub: Any) -> None:
    users = actions(sub, "users", help="list the users, reset a user's password", description=ABOUT)
    listing = users.add_parser("list", help="every user who may log in: role, projects, password")
    listing.set_defaults(run=cmd_users_list)
    reset = users.add_parser("reset-password", help="a new password for a user (auth.type local), shown once")
    reset.add_argument("name", help="the user")
    reset.set_defaults(run=cmd_users_reset_password)
    for action in (listing, reset):
        config_arg(action)


def cmd_users_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    local = config.auth.type == "local"
    passwords = (
        {p.user: f"set {p.changed_at:%Y-%m-%d %H:%M} by {p.changed_by}" for p in _store(config).list()}
        if local
        else {}
    )
    rows = [("NAME", "ROLE", "PROJECTS", "PASSWORD")]
    for user in config.users:
        projects = [name for name, project in config.projects.items() if user in project.members]
        password = passwords.get(user, "none yet (`lavahub up` gives one)") if local else "-"
        role = "admin" if user in config.admins else "user"
        rows.append((user, role, ",".join(projects) or "-", password))
    print_table(rows)
    if not local:
        print(f"(auth.type {config.auth.type}: lavahub keeps no passwords)")
    return 0


def cmd_users_reset_password(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.auth.type != "local":
        raise PublicError(
            f"auth.type is {config.auth.type}: lavahub keeps no passwords of its own",
            hint="reset-password is for auth.type local",
        )
    if args.name not in config.users:
        raise PublicError(
            f"{args.name!r} is not a user of this platform",
            hint="users are the config's admins and project members (`lavahub users list`)",
        )
    password = _store(config).reset(args.name, by=os.environ.get("USER") or "cli")
    print(f"new password of {args.name}: {password}")
    print(f"(shown once; {args.name} may change it at /hub/change-password; the hub needs no restart)")
    return 0


def _store(config: PlatformConfig) -> PasswordStore:
    return PasswordStore(config.database_url)

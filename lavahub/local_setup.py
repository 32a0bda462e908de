"""What `lavahub up` prepares on this machine before the hub starts (local backend).

With OS accounts (`accounts`, the default as root): every configured user's
account and every project's group, the storage tree with its owners and modes
(spawner/ownership.py), and the data dir closed to everyone but the platform.
Without them it says, once and plainly, that every workspace and job runs as the
platform's own OS user.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from spawner.accounts import Naming, ensure_group, sync_accounts
from spawner.errors import PublicError
from spawner.local_plan import personal_dir
from spawner.names import safe_segment
from spawner.ownership import (
    GLOBAL_MODE,
    PASS_THROUGH,
    PERSONAL_MODE,
    PROJECT_MODE,
    Owner,
    lay_out_root,
    own,
    protect,
    unreachable,
)

from .config import PlatformConfig
from .paths import REPO_ROOT


def naming(config: PlatformConfig) -> Naming:
    return Naming(config.accounts.user_prefix, config.accounts.group_prefix)


def single_account_notice() -> str:
    """What the home page and the start-up log say when users share one OS account."""
    return (
        f"every workspace and job runs as the OS user {getpass.getuser()!r}: users are not kept "
        "apart from each other's files (run lavahub as root for an OS account per user)"
    )


def prepare(config: PlatformConfig) -> list[str]:
    """Make the accounts, groups and directories; returns what `up` prints about them."""
    if config.backend != "local":
        return []
    if not config.os_accounts:
        return [f"accounts:       none: {single_account_notice()}"]
    root = config.local_root
    inside = root == config.data_dir or root.is_relative_to(config.data_dir)
    config.data_dir.chmod(PASS_THROUGH if inside else 0o700)
    # the storage root itself is laid out below; everything above it is the operator's
    needed_by_users = {
        "the storage root": root.parent,
        "lavahub's Python": Path(os.path.realpath(sys.executable)),
        "lavahub's Python library": Path(sys.base_prefix),
        "lavahub's virtualenv": Path(sys.prefix),
        "lavahub": REPO_ROOT,
    }
    for why, needed in needed_by_users.items():
        closed = unreachable(needed)
        if closed is not None:
            raise PublicError(
                f"users' OS accounts cannot reach {why} {str(needed)!r}: {str(closed)!r} is closed to "
                "other users",
                hint="put data_dir (or storage.local.root), lavahub and its Python under directories "
                "others may enter (such as /var/lib/lavahub, /opt and /usr/bin/python3: `make install` "
                "uses the system's Python), or set accounts.mode: off",
            )
    names = naming(config)
    members: dict[str, list[str]] = {user: [] for user in config.users}
    for project_name, project in config.projects.items():
        for user in project.members:
            members[user].append(project_name)
    lay_out_root(root)
    homes = {user: str(personal_dir(root, user)) for user in members}
    accounts = sync_accounts(members, config.admins, homes, names)
    for user, account in accounts.items():
        own(Path(homes[user]), Owner(account.uid, account.gid, PERSONAL_MODE))
    for project_name in config.projects:
        gid = ensure_group(names.project(project_name))
        own(root / "projects" / safe_segment(project_name), Owner(0, gid, PROJECT_MODE))
    own(root / "global", Owner(0, ensure_group(names.admins_group), GLOBAL_MODE))
    # the storage tree stays open to pass through; everything else of the platform's is closed
    storage = [root / "users", root / "projects", root / "global", root / ".lavahub"]
    made_private = protect(config.data_dir, keep_open=storage)
    example = ", ".join(f"{user} as {a.name}" for user, a in list(accounts.items())[:3])
    lines = [
        f"accounts:       {len(accounts)} users with OS accounts of their own ({example}"
        f"{', ...' if len(accounts) > 3 else ''}); {len(config.projects)} project groups"
    ]
    if made_private:
        listed = ", ".join(sorted(made_private))
        lines.append(f"                closed to users: {listed} in {config.data_dir}")
    return lines

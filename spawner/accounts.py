"""One OS account per hub user on one machine, and a POSIX group per project.

When lavahub runs as root on the local backend, each user's JupyterLab, terminal,
kernels and job workers run as that user's own account (`lavahub-alice`), as
JupyterHub's LocalProcessSpawner and The Littlest JupyterHub do. File permissions
then keep users apart: personal directories belong to their user alone, project
directories to the project's group, and the platform's own files to root.

Names: hub user and project names are wider than what `useradd` accepts, so a
name that is not already a short lowercase name becomes a folded name plus a hash
(as `safe_segment` does for paths). lavahub marks the accounts it makes (their
comment field says `lavahub user <hub user>`) and never adopts an account it did not
make: a clash with an existing system account is an error, not a takeover.
"""

from __future__ import annotations

import grp
import hashlib
import logging
import os
import pwd
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .errors import PublicError

log = logging.getLogger(__name__)

MAX_NAME = 32  # what useradd and groupadd take
_OS_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")
_UNSAFE = re.compile(r"[^a-z0-9_-]+")
MARK = "lavahub user "  # the start of the comment (GECOS) field of every account lavahub makes
SHELL = "/bin/bash"


class AccountError(PublicError):
    """An account or group could not be made or used as lavahub needs it."""


@dataclass(frozen=True)
class Account:
    """The OS account a hub user's processes run as."""

    user: str  # the hub user
    name: str  # the OS account
    uid: int
    gid: int  # its primary group: the platform's users group
    groups: tuple[int, ...]  # every group it is in, the primary one first
    home: str

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "uid": self.uid, "gid": self.gid, "groups": list(self.groups)}

    def preexec(self, *, umask: int, before: Callable[[], None] | None = None) -> Callable[[], None]:
        """A Popen `preexec_fn` that becomes this account (after `before`, run as root), in its home."""

        def become() -> None:
            if before is not None:
                before()
            os.umask(umask)
            os.setgroups(list(self.groups))
            os.setgid(self.gid)
            os.setuid(self.uid)
            os.chdir(self.home)

        return become


def os_name(name: str, prefix: str) -> str:
    """The OS name for `name` (a hub user or a project): `prefix + name` when that is already a
    valid short name, else `prefix` + the name folded + a hash of it, within 32 characters."""
    candidate = prefix + name
    if len(candidate) <= MAX_NAME and _OS_NAME.fullmatch(candidate):
        return candidate
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    room = MAX_NAME - len(prefix) - len(digest) - 1
    if room < 1:
        raise AccountError(f"the account prefix {prefix!r} leaves no room for a name within {MAX_NAME}")
    folded = _UNSAFE.sub("-", name.lower()).strip("-")[:room].rstrip("-")
    result = f"{prefix}{folded}-{digest}" if folded else f"{prefix}{digest}"
    if not _OS_NAME.fullmatch(result):
        raise AccountError(f"{result!r} is not a valid account name", hint="start the prefix with a letter")
    return result


@dataclass(frozen=True)
class Naming:
    """How hub users and projects are named on this machine (from the config's `accounts`)."""

    user_prefix: str = "lavahub-"
    group_prefix: str = "lavahub-"

    def user(self, hub_user: str) -> str:
        return os_name(hub_user, self.user_prefix)

    def project(self, project: str) -> str:
        return os_name(project, self.group_prefix + "p-")

    @property
    def users_group(self) -> str:
        """Every account's primary group: it gives no access to anything by itself."""
        return self.group_prefix + "users"

    @property
    def admins_group(self) -> str:
        """The hub admins' accounts: the only ones that may write the global directory."""
        return self.group_prefix + "admins"


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise AccountError(f"{command[0]} failed: {said[-1] if said else f'exit {done.returncode}'}")


def ensure_group(name: str) -> int:
    """The id of group `name`, made (as a system group) if it does not exist."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        pass
    _run(["groupadd", name])
    log.info("Made group %r", name)
    return grp.getgrnam(name).gr_gid


def ensure_account(hub_user: str, *, home: str, groups: Iterable[str], naming: Naming) -> Account:
    """The account of `hub_user`, made on first use, in exactly `groups` (and the users group).

    Its home is the personal directory; it has no password (nobody logs in to it:
    the hub starts its processes). Group memberships follow the config, so a user
    who left a project loses its group at the next start or spawn.
    """
    name = naming.user(hub_user)
    primary = ensure_group(naming.users_group)
    wanted = sorted(set(groups))
    for group in wanted:
        ensure_group(group)
    comment = f"{MARK}{hub_user}"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _run([
            "useradd", "--no-create-home", "--no-user-group", "--gid", naming.users_group,
            "--home-dir", home, "--shell", SHELL, "--comment", comment,
            *(["--groups", ",".join(wanted)] if wanted else []), name,
        ])  # fmt: skip
        log.info("Made account %r for hub user %r", name, hub_user)
        entry = pwd.getpwnam(name)
    else:
        if entry.pw_gecos != comment:
            raise AccountError(
                f"the OS account {name!r} exists and was not made by lavahub for {hub_user!r}",
                hint="remove or rename that account, or set accounts.user_prefix",
            )
        current = sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem)
        if current != wanted or entry.pw_dir != home or entry.pw_gid != primary:
            _run(["usermod", "--gid", naming.users_group, "--home", home, "--groups", ",".join(wanted), name])
            entry = pwd.getpwnam(name)
    gids = [primary, *(grp.getgrnam(g).gr_gid for g in wanted)]
    return Account(hub_user, name, entry.pw_uid, primary, tuple(dict.fromkeys(gids)), entry.pw_dir)


def account_groups(hub_user: str, projects: Iterable[str], *, admin: bool, naming: Naming) -> list[str]:
    """The groups `hub_user`'s account belongs in: each of their projects', and admins'."""
    names = [naming.project(p) for p in projects]
    return [*names, naming.admins_group] if admin else names


def sync_accounts(
    members: Mapping[str, Iterable[str]], admins: Iterable[str], homes: Mapping[str, str], naming: Naming
) -> dict[str, Account]:
    """Every configured user's account, with the groups of their projects (`members`: user ->
    projects). Run at start-up, so jobs find their owner's account before any workspace."""
    admin_set = set(admins)
    return {
        user: ensure_account(
            user,
            home=homes[user],
            groups=account_groups(user, projects, admin=user in admin_set, naming=naming),
            naming=naming,
        )
        for user, projects in members.items()
    }


def lookup(hub_user: str, naming: Naming) -> Account:
    """The existing account of `hub_user` (made at start-up), checked to be lavahub's."""
    name = naming.user(hub_user)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise AccountError(
            f"user {hub_user!r} has no OS account {name!r} yet", hint="restart the platform (lavahub up)"
        ) from None
    if entry.pw_gecos != f"{MARK}{hub_user}":
        raise AccountError(f"the OS account {name!r} was not made by lavahub for {hub_user!r}")
    groups = os.getgrouplist(name, entry.pw_gid)
    return Account(hub_user, name, entry.pw_uid, entry.pw_gid, tuple(dict.fromkeys(groups)), entry.pw_dir)

"""Who owns what on the local backend's storage, when users have their own OS accounts.

    <root>/                 root 0711   others may pass through, not list
      users/                root 0711
        <user>/             <user>:<users> 0700            the personal volume
      projects/             root 0711
        <project>/          root:<project group> 2770      members read and write
      global/               root:<admins group> 2775       admins write, everyone reads
      .lavahub/jupyter/     root 0755                      the kernelspec every workspace uses

The hub runs as root and the users' directories are theirs to change, so
nothing below a user's own directory is reached through a path that they could
turn into a link: the links in a home are made through directory descriptors
opened without following links (`link_home`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

PASS_THROUGH = 0o711
PERSONAL_MODE = 0o700
PROJECT_MODE = 0o2770
GLOBAL_MODE = 0o2775
PUBLIC_MODE = 0o755


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int
    mode: int


def own(path: Path, owner: Owner) -> None:
    """Make `path` a directory (if missing) owned and moded as `owner` says.

    `path`'s parent must be the platform's (root's): its user cannot swap it for a link,
    and a link found there is refused rather than followed.
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != (owner.uid, owner.gid):
            os.fchown(fd, owner.uid, owner.gid)
        if stat.S_IMODE(info.st_mode) != owner.mode:
            os.fchmod(fd, owner.mode)
    finally:
        os.close(fd)


def lay_out_root(root: Path) -> None:
    """The storage root and its users/ and projects/: root's, open to pass through only."""
    root.mkdir(parents=True, exist_ok=True)
    for path in (root, root / "users", root / "projects"):
        own(path, Owner(0, 0, PASS_THROUGH))
    own(root / ".lavahub", Owner(0, 0, PUBLIC_MODE))


def unreachable(path: Path) -> Path | None:
    """The first directory on the way to `path` that other users may not pass through, if any."""
    for directory in (*reversed(path.parents), path):
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            return None  # made later, by lavahub, with the modes above
        if not mode & stat.S_IXOTH:
            return directory
    return None


def protect(data_dir: Path, *, keep_open: Iterable[Path] = ()) -> list[str]:
    """Close the platform's own files in `data_dir` (databases, credentials, cookie secret,
    job logs, Ray state) to everyone but root; `keep_open` (the storage directories) stay.
    Returns the names it had to close."""
    kept = {p.resolve() for p in keep_open}
    closed = []
    for entry in os.scandir(data_dir):
        path = Path(entry.path)
        if path.resolve() in kept or entry.is_symlink():
            continue
        info = entry.stat(follow_symlinks=False)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o077, follow_symlinks=False)
            closed.append(entry.name)
    return closed


def link_home(home: Path, links: Mapping[str, str], keep: Iterable[str], owner: Owner | None) -> None:
    """Make `home`'s `projects/<p>` and `global` links to the directories they open.

    Links in projects/ to projects not in `keep` are removed (the user's own files
    there stay); a file of the user's where a link should go is left alone.
    """
    home_fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        projects_fd = _subdir(home_fd, "projects", owner)
        if projects_fd is None:
            log.warning("Not linking projects in %r: projects is not a directory", str(home))
        else:
            try:
                for name in os.listdir(projects_fd):
                    if name not in keep and _is_link(projects_fd, name):
                        os.unlink(name, dir_fd=projects_fd)
                for link, target in links.items():
                    if Path(link).parent == home / "projects":
                        _link(projects_fd, Path(link).name, target, owner)
            finally:
                os.close(projects_fd)
        for link, target in links.items():
            if Path(link).parent == home:
                _link(home_fd, Path(link).name, target, owner)
    finally:
        os.close(home_fd)


def _subdir(parent: int, name: str, owner: Owner | None) -> int | None:
    try:
        os.mkdir(name, 0o755, dir_fd=parent)
        made = True
    except FileExistsError:
        made = False
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    if made and owner is not None:
        os.fchown(fd, owner.uid, owner.gid)
    return fd


def _is_link(directory: int, name: str) -> bool:
    return stat.S_ISLNK(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)


def _link(directory: int, name: str, target: str, owner: Owner | None) -> None:
    try:
        if _is_link(directory, name):
            if os.readlink(name, dir_fd=directory) == target:
                return
            os.unlink(name, dir_fd=directory)
        else:
            log.warning("Not linking %r: a file or directory of that name already exists", name)
            return
    except FileNotFoundError:
        pass
    os.symlink(target, name, target_is_directory=True, dir_fd=directory)
    if owner is not None:
        os.chown(name, owner.uid, owner.gid, dir_fd=directory, follow_symlinks=False)

"""Reading files that a job can write: never a link, never more than asked, never blocking.

A job's directory is on its user's volume, so anything in it may be a directory,
a FIFO, a symlink to `/dev/zero` or to someone else's file, or gigabytes of
garbage. Every read of such a file goes through here: it is opened with
`O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` (with `below`, every directory on the way
too), refused unless `fstat` says it is a regular file with one link, read at
most `limit` bytes, and parsed only into the shape the caller expects.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path, PurePath

FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Untrusted(Exception):
    """A file a job controls is not what it should be; the message says what, in plain words."""


def open_regular(path: Path, *, below: Path | None = None) -> int:
    """A descriptor of the regular file at `path`; FileNotFoundError if there is none.

    `below`: a directory the job cannot replace; every component of `path` under
    it is opened without following links, so no directory on the way can be a
    symlink elsewhere. The caller closes the descriptor.
    """
    fd = _open_beneath(path, below) if below is not None else _open(str(path), FLAGS)
    try:
        _file_of_its_own(fd, path.name, "read")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _file_of_its_own(fd: int, name: str, use: str) -> os.stat_result:
    """`fd`'s status, if it is a regular file with a single link; Untrusted otherwise."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise Untrusted(f"{name} is {_kind(info.st_mode)}, not a regular file")
    if info.st_nlink != 1:
        raise Untrusted(f"{name} has {info.st_nlink} hard links; only a file of its own is {use}")
    return info


def read_at(path: Path, offset: int, limit: int, *, below: Path | None = None) -> tuple[bytes, int]:
    """At most `limit` bytes from `offset`, and the file's size now."""
    fd = open_regular(path, below=below)
    try:
        size = os.fstat(fd).st_size
        return (os.pread(fd, min(limit, max(size - offset, 0)), offset) if offset < size else b""), size
    finally:
        os.close(fd)


def read_capped(path: Path, limit: int, *, below: Path | None = None) -> bytes:
    """The whole file, if it holds at most `limit` bytes; Untrusted otherwise."""
    fd = open_regular(path, below=below)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise Untrusted(f"{path.name} is {size} bytes, more than the {limit} that are read")
        data = os.pread(fd, limit + 1, 0)  # it may have grown since fstat
        if len(data) > limit:
            raise Untrusted(f"{path.name} grew past the {limit} bytes that are read")
        return data
    finally:
        os.close(fd)


Owner = tuple[int, int]  # uid, gid: the job's user, when users have OS accounts


def make_dirs(path: Path, *, below: Path, owner: Owner | None = None) -> int:
    """Every directory from `below` down to `path`, made where missing, none through a link.

    Returns a descriptor of `path` (the caller closes it), so files are then written
    into that very directory (`write_new`) whatever the job renames meanwhile. With
    `owner`, each directory below `below` is the job's user's (their workers write there).
    """
    parts = PurePath(path).relative_to(below).parts
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{path} is not a directory below {below}")
    fd = os.open(below, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            inner = _open(part, FLAGS | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
            if owner is not None and os.fstat(fd)[4:6] != owner:
                os.fchown(fd, *owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_to(directory: int, name: str, *, owner: Owner | None = None) -> int:
    """A descriptor to append to `name` in `directory` (made if missing): a regular file of one
    link, never opened through a link. The caller closes it."""
    fd = _open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
               directory, 0o644)  # fmt: skip
    try:
        info = _file_of_its_own(fd, name, "written")
        if owner is not None and (info.st_uid, info.st_gid) != owner:
            os.fchown(fd, *owner)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_new(directory: int, name: str, data: bytes, *, owner: Owner | None = None) -> None:
    """`name` in the directory `directory`, as a new file with `data`: never through a link.

    Whatever stood there (a file, a link planted by the job) is removed first, not followed.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)
    fd = _open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, directory, 0o644)
    if owner is not None:
        os.fchown(fd, *owner)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _open(path: str, flags: int, dir_fd: int | None = None, mode: int = 0o777) -> int:
    try:
        return os.open(path, flags, mode, dir_fd=dir_fd)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        name = Path(path).name
        if e.errno == errno.ELOOP:
            raise Untrusted(f"{name} is a symbolic link; links are not followed") from None
        if e.errno == errno.ENOTDIR:
            raise Untrusted(f"{name} is a symbolic link or not a directory; links are not followed") from None
        raise Untrusted(f"{name} cannot be opened: {e.strerror}") from None


def _open_beneath(path: Path, below: Path) -> int:
    parts = PurePath(path).relative_to(below).parts
    if not parts or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{path} is not a file below {below}")
    fd = os.open(below, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = _open(part, FLAGS | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        return _open(parts[-1], FLAGS, dir_fd=fd)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a regular file"

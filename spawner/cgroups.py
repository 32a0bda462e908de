"""CPU, memory and process-count limits, and GPUs hidden, through cgroups.

On the local backend a workspace (one JupyterLab process tree) and each job
worker is a process on this machine; a cgroup is what makes the CPU and memory
amounts it was given more than numbers in a quota. What is possible depends on
the machine, which `detect` finds out by trying (once, `this_machine`) and
`Controllers.describe` says in one line for the log:

- cgroups v1 (a hierarchy per controller, `<root>/<controller>/lavahub/<name>`):
  `cpu.cfs_quota_us`, `memory.limit_in_bytes` (and `memory.memsw.limit_in_bytes`,
  so swap does not stretch the limit), `pids.max`, and `devices.deny` for every
  `/dev/nvidiaN` the group was not given;
- cgroups v2 (one hierarchy, `<root>/lavahub/<name>`): `cpu.max`, `memory.max`
  (and `memory.swap.max`), `pids.max`; device filtering there needs an eBPF
  program, which this module does not load, so GPUs are not hidden on v2;
- nothing writable (not root, a read-only mount): groups enforce nothing and
  the log says so, rather than failing every start.

A child joins its group before it execs (`Cgroup.preexec`), so nothing it forks
escapes; `Cgroup.attach` moves a process that already runs. Groups are only made
and removed here: no process is ever killed by this module.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROOT = Path("/sys/fs/cgroup")
BASE = "lavahub"

# NVIDIA's character devices: /dev/nvidiaN is 195:N; 254 (nvidia-modeset) and 255 (nvidiactl)
# are shared by every GPU and stay allowed, as does nvidia-uvm (a major of its own).
NVIDIA_MAJOR = 195
_NVIDIA_SHARED_MINORS = (254, 255)

CPU_PERIOD_US = 100_000
_MIN_CPU_QUOTA_US = 1_000  # the kernel refuses less than 1 ms a period

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NAME_RULE = "letters, digits and . _ -, starting with a letter or digit, at most 128 characters"

# The controllers lavahub uses, in the order limits are written.
CONTROLLERS = ("cpu", "memory", "pids", "devices")

# A file only that controller's v1 hierarchy has at its root (pids has none: cgroup.procs must do).
_V1_SIGNATURE = {
    "cpu": "cpu.cfs_quota_us",
    "memory": "memory.limit_in_bytes",
    "pids": "cgroup.procs",
    "devices": "devices.deny",
}

_V2_NO_DEVICES = (
    "GPUs not given stay visible (cgroups v2 filters devices only through eBPF, which lavahub does not load)"
)

_ENFORCES = {"cpu": "CPU", "memory": "memory", "pids": "process-count"}


class CgroupError(Exception):
    """A group could not be made, limited or joined; the message names the file and the error."""


@dataclass(frozen=True)
class Controller:
    """One usable controller: its name, cgroup version and where its hierarchy is mounted."""

    name: str
    version: int
    hierarchy: Path
    swap: bool = False  # memory only: swap can be limited too (memsw on v1, memory.swap.max on v2)


@dataclass(frozen=True)
class Controllers:
    """What `detect` found: the usable controllers, and why each other one is not."""

    root: Path
    base: str
    usable: tuple[Controller, ...]
    unusable: tuple[tuple[str, str], ...] = ()  # (controller, why), in CONTROLLERS' order

    def get(self, name: str) -> Controller | None:
        return next((c for c in self.usable if c.name == name), None)

    @property
    def enforced(self) -> bool:
        """Whether CPU or memory limits take effect at all."""
        return self.get("cpu") is not None or self.get("memory") is not None

    def describe(self) -> str:
        """One line for the log: what was found, where, and what is therefore (not) enforced."""
        if not self.usable:
            why = self._why_not() or "none mounted"
            return f"no writable cgroups under {self.root} ({why}): CPU and memory limits are not enforced"
        by_version = sorted({c.version for c in self.usable})
        found = "; ".join(
            f"cgroups v{v}: " + ", ".join(c.name for c in self.usable if c.version == v) for v in by_version
        )
        enforced = [_ENFORCES[c.name] for c in self.usable if c.name in _ENFORCES]
        line = f"{found} under {self.root}"
        if enforced:
            line += f"; {_words(enforced)} limits enforced"
        if self.get("devices") is not None:
            line += "; GPUs not given are hidden"
        if self.unusable:
            line += f"; not enforced: {self._why_not()}"
        return line

    def _why_not(self) -> str:
        """`pids, devices: not mounted`: the unusable controllers, grouped by reason."""
        reasons: dict[str, list[str]] = {}
        for name, why in self.unusable:
            reasons.setdefault(why, []).append(name)
        return "; ".join(f"{', '.join(names)}: {why}" for why, names in reasons.items())

    def path(self, controller: Controller, name: str) -> Path:
        return controller.hierarchy / self.base / name


@dataclass(frozen=True)
class Limits:
    """What one group may use. None (or no GPUs listed) is no limit of that kind.

    GPUs are the N of `/dev/nvidiaN` (NVML's minor number, which is NVML's index
    on most machines but not on all). Every GPU in `all_gpus` that is not in
    `gpus_allowed` is hidden; `gpus_allowed=None` hides none.
    """

    cpus: float | None = None
    memory_bytes: int | None = None
    gpus_allowed: tuple[int, ...] | None = None
    all_gpus: tuple[int, ...] = ()
    pids: int | None = None

    def __post_init__(self) -> None:
        if self.cpus is not None and not self.cpus > 0:
            raise ValueError(f"cpus must be more than 0, not {self.cpus!r}")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be more than 0, not {self.memory_bytes!r}")
        if self.pids is not None and self.pids <= 0:
            raise ValueError(f"pids must be more than 0, not {self.pids!r}")
        for gpu in (*self.all_gpus, *(self.gpus_allowed or ())):
            if not 0 <= gpu < min(_NVIDIA_SHARED_MINORS):
                raise ValueError(f"not a GPU's device number: {gpu!r}")

    def hidden_gpus(self) -> tuple[int, ...]:
        if self.gpus_allowed is None:
            return ()
        return tuple(sorted(set(self.all_gpus) - set(self.gpus_allowed)))


@dataclass(frozen=True)
class Cgroup:
    """One group: a directory in each hierarchy it is in (v1: per controller; v2: one)."""

    name: str
    dirs: tuple[Path, ...]
    controllers: tuple[str, ...]
    # computed once, so joining from a forked child is a few system calls and no allocation
    _procs: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_procs", tuple(os.fsencode(d / "cgroup.procs") for d in self.dirs))

    def procs_files(self) -> tuple[str, ...]:
        """The `cgroup.procs` files a process writes its pid (or 0, itself) to, to join."""
        return tuple(os.fsdecode(p) for p in self._procs)

    def attach(self, pid: int) -> None:
        """Move a running process into the group (not its existing children: prefer `preexec`)."""
        for procs in self._procs:
            try:
                _write(procs, str(pid).encode())
            except OSError as e:
                raise CgroupError(f"cannot move {pid} into {os.fsdecode(procs)}: {e.strerror}") from None

    def join_self(self) -> None:
        """Move the calling process into the group. Safe between fork and exec: only
        os.open, os.write and os.close of paths computed beforehand. Call it before
        dropping root (the files are root's); it raises OSError when a file is missing."""
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)

    def preexec(self, then: Callable[[], None] | None = None) -> Callable[[], None]:
        """A `preexec_fn` for subprocess: join the group, then run `then` (e.g. drop privileges)."""

        def preexec_fn() -> None:
            self.join_self()
            if then is not None:
                then()

        return preexec_fn

    def remove(self) -> tuple[Path, ...]:
        """Remove the group's directories; those still holding processes are left (and returned).

        A missing directory is already removed. Nothing is killed: call it after the
        processes have exited, and again later for what it returned.
        """
        busy, failed = [], []
        for d in self.dirs:
            try:
                os.rmdir(d)
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno == errno.EBUSY:
                    busy.append(d)
                else:
                    failed.append(f"cannot remove {d}: {e.strerror}")
        if failed:
            raise CgroupError("; ".join(failed))
        return tuple(busy)


def detect(root: Path = ROOT, base: str = BASE) -> Controllers:
    """Find the usable controllers under `root` by making `<hierarchy>/<base>` in each.

    Whether a hierarchy is writable is only known by trying (root in a container
    may see a read-write mount it cannot write), so this makes the base group
    (and on v2 enables the controllers for it), which creating groups needs anyway.
    """
    _check_name(base)
    if (root / "cgroup.controllers").is_file():
        candidates, unusable = _v2_candidates(root), {"devices": _V2_NO_DEVICES}
    else:
        candidates, unusable = _v1_candidates(root), {}
        missing = [n for n in CONTROLLERS if n not in {c.name for c in candidates}]
        hybrid = root / "unified"
        if missing and (hybrid / "cgroup.controllers").is_file():
            candidates += [c for c in _v2_candidates(hybrid) if c.name in missing]
            if "devices" in missing:
                unusable["devices"] = _V2_NO_DEVICES
    usable = []
    for hierarchy, members in _by_hierarchy(candidates):
        ready, why = _prepare(hierarchy, base, members)
        usable += [_with_swap(c, hierarchy / base) for c in members if c.name in ready]
        unusable.update(why)
    for name in CONTROLLERS:
        if name not in {c.name for c in usable} and name not in unusable:
            unusable[name] = "not mounted"
    return Controllers(
        root=root,
        base=base,
        usable=tuple(sorted(usable, key=lambda c: CONTROLLERS.index(c.name))),
        unusable=tuple((n, unusable[n]) for n in CONTROLLERS if n in unusable),
    )


@functools.cache
def this_machine() -> Controllers:
    """This machine's controllers under /sys/fs/cgroup, found once per process and logged once."""
    found = detect()
    log.log(logging.INFO if found.enforced else logging.WARNING, "%s", found.describe())
    return found


def group(controllers: Controllers, name: str) -> Cgroup:
    """The group called `name` (made or not): e.g. to remove one a hub restart left behind."""
    _check_name(name)
    dirs: dict[Path, list[str]] = {}
    for c in controllers.usable:
        dirs.setdefault(controllers.path(c, name), []).append(c.name)
    return Cgroup(name, tuple(dirs), tuple(n for names in dirs.values() for n in names))


def create(controllers: Controllers, name: str, limits: Limits) -> Cgroup:
    """Make the group (or reset an existing one) with these limits, in every usable controller.

    `name` is e.g. `workspace-alice`, `workspace-alice--ws2` or `job-<id>-worker-0`. With no
    usable controller the group has no directories and joining it does nothing. On an error
    what was made is removed again and CgroupError says which file refused what.
    """
    made = group(controllers, name)
    try:
        for d in made.dirs:
            try:
                d.mkdir()
            except FileExistsError:
                if not d.is_dir():
                    raise
        for path, value in writes(controllers, name, limits):
            try:
                _write(os.fsencode(path), value.encode(), create=True)
            except OSError as e:
                raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}") from None
    except OSError as e:
        _discard(made)
        raise CgroupError(f"cannot make {e.filename}: {e.strerror}") from None
    except CgroupError:
        _discard(made)
        raise
    return made


def _discard(made: Cgroup) -> None:
    """After a failed create: remove what was made, without hiding the error that stopped it."""
    try:
        made.remove()
    except CgroupError as e:
        log.warning("%s", e)


def writes(controllers: Controllers, name: str, limits: Limits) -> tuple[tuple[Path, str], ...]:
    """Every (file, value) `create` writes, in order; a reset of an existing group too."""
    out: list[tuple[Path, str]] = []
    for c in controllers.usable:
        d = controllers.path(c, name)
        if c.name == "cpu":
            out += _cpu(d, c.version, limits.cpus)
        elif c.name == "memory":
            out += _memory(d, c.version, limits.memory_bytes, c.swap)
        elif c.name == "pids":
            out.append((d / "pids.max", "max" if limits.pids is None else str(limits.pids)))
        elif c.name == "devices":
            hidden = limits.hidden_gpus()
            for gpu in sorted(set(limits.all_gpus) | set(limits.gpus_allowed or ())):
                rule = f"c {NVIDIA_MAJOR}:{gpu} rwm"
                out.append((d / ("devices.deny" if gpu in hidden else "devices.allow"), rule))
    return tuple(out)


def _cpu(d: Path, version: int, cpus: float | None) -> list[tuple[Path, str]]:
    quota = None if cpus is None else max(_MIN_CPU_QUOTA_US, round(cpus * CPU_PERIOD_US))
    if version == 2:
        return [(d / "cpu.max", f"{'max' if quota is None else quota} {CPU_PERIOD_US}")]
    return [(d / "cpu.cfs_period_us", str(CPU_PERIOD_US)), (d / "cpu.cfs_quota_us", str(quota or -1))]


def _memory(d: Path, version: int, limit: int | None, swap: bool) -> list[tuple[Path, str]]:
    if version == 2:
        out = [(d / "memory.max", "max" if limit is None else str(limit))]
        if swap:
            out.append((d / "memory.swap.max", "max" if limit is None else "0"))
        return out
    value = str(limit or -1)
    if not swap:
        return [(d / "memory.limit_in_bytes", value)]
    # memsw (memory + swap) may never be below the memory limit: lift it, set the limit, then lower it
    memsw = d / "memory.memsw.limit_in_bytes"
    return [(memsw, "-1"), (d / "memory.limit_in_bytes", value), (memsw, value)]


def _v1_candidates(root: Path) -> list[Controller]:
    found = []
    for name in CONTROLLERS:
        hierarchy = root / name
        if (
            (hierarchy / "cgroup.procs").is_file()
            and (hierarchy / _V1_SIGNATURE[name]).is_file()
            and not (hierarchy / "cgroup.controllers").exists()
        ):
            found.append(Controller(name, 1, hierarchy))
    return found


def _v2_candidates(hierarchy: Path) -> list[Controller]:
    try:
        offered = (hierarchy / "cgroup.controllers").read_text().split()
    except OSError:
        return []
    return [Controller(n, 2, hierarchy) for n in CONTROLLERS if n in offered and n != "devices"]


def _by_hierarchy(candidates: Iterable[Controller]) -> list[tuple[Path, list[Controller]]]:
    """Co-mounted controllers (v1 `cpu,cpuacct`, or all of v2) share one directory per group."""
    groups: dict[Path, list[Controller]] = {}
    for c in candidates:
        groups.setdefault(Path(os.path.realpath(c.hierarchy)), []).append(c)
    return [(group[0].hierarchy, group) for group in groups.values()]


def _prepare(hierarchy: Path, base: str, group: list[Controller]) -> tuple[set[str], dict[str, str]]:
    """Make `<hierarchy>/<base>`; on v2 also let its children use the controllers (subtree_control)."""
    names = [c.name for c in group]
    try:
        (hierarchy / base).mkdir(exist_ok=True)
    except OSError as e:
        return set(), dict.fromkeys(names, f"cannot make {base}/: {e.strerror}")
    if group[0].version == 1:
        return set(names), {}
    ready, why = set(names), {}
    for parent in (hierarchy, hierarchy / base):
        for name, reason in _enable(parent, [n for n in names if n in ready]).items():
            ready.discard(name)
            why[name] = reason
    return ready, why


def _enable(parent: Path, names: list[str]) -> dict[str, str]:
    """Enable controllers for `parent`'s children; the ones that cannot be, with why."""
    control = parent / "cgroup.subtree_control"
    try:
        enabled = control.read_text().split()
    except OSError as e:
        return dict.fromkeys(names, f"cannot read {control}: {e.strerror}")
    wanted = [n for n in names if n not in enabled]
    if not wanted:
        return {}
    try:
        _write(os.fsencode(control), " ".join(f"+{n}" for n in wanted).encode())
        return {}
    except OSError:
        pass
    failed = {}
    for name in wanted:  # one at a time, to know which one the kernel refuses
        try:
            _write(os.fsencode(control), f"+{name}".encode())
        except OSError as e:
            failed[name] = f"cannot enable it in {control}: {e.strerror}"
    return failed


def _with_swap(c: Controller, base: Path) -> Controller:
    if c.name != "memory":
        return c
    swap_file = "memory.memsw.limit_in_bytes" if c.version == 1 else "memory.swap.max"
    return Controller(c.name, c.version, c.hierarchy, swap=os.access(base / swap_file, os.W_OK))


def _write(path: bytes, value: bytes, *, create: bool = False) -> None:
    """One write(2) of the whole value, as the kernel wants cgroup files written; errors raise.

    `create` opens as the shell's `>` does: the kernel's files are always there already,
    a fake tree's (tests) are made.
    """
    flags = os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT | os.O_TRUNC if create else 0)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, value)
    finally:
        os.close(fd)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"not a cgroup name: {name!r} ({NAME_RULE})")


def _words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"

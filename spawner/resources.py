"""Resource amounts (CPUs, memory, GPUs), their parsing, and project quota checks."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PublicError

_UNITS = {
    "": 1,
    "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
    "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40,
}  # fmt: skip
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*$", re.IGNORECASE)


def parse_memory(value: object) -> int:
    """Bytes from `8Gi`, `512Mi`, `2G` or a plain number of bytes; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"not an amount of memory: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"memory cannot be negative: {value!r}")
        return int(value)
    if not isinstance(value, str):
        raise ValueError(f"not an amount of memory: {value!r}")
    match = _MEMORY.match(value)
    if not match:
        raise ValueError(f"not an amount of memory: {value!r} (use e.g. 512Mi, 8Gi)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])


def format_memory(nbytes: int) -> str:
    """The shortest exact binary form (`8Gi`), as Kubernetes writes quantities."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        size = _UNITS[unit.lower()]
        if nbytes and nbytes % size == 0:
            return f"{nbytes // size}{unit}"
    return str(nbytes)


def format_cpus(cpus: float) -> str:
    return str(int(cpus)) if float(cpus).is_integer() else f"{cpus:g}"


@dataclass(frozen=True)
class Resources:
    """What one workspace (or one job worker) asks for."""

    cpus: float = 0.0
    memory: int = 0
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory + other.memory, self.gpus + other.gpus)

    def __mul__(self, count: int) -> Resources:
        """What `count` workers of this size hold together."""
        return Resources(self.cpus * count, self.memory * count, self.gpus * count)

    def describe(self) -> str:
        return (
            f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}, {format_cpus(self.cpus)} CPU, "
            f"{format_memory(self.memory)} memory"
        )

    def to_dict(self) -> dict[str, object]:
        return {"cpus": self.cpus, "memory": format_memory(self.memory), "gpus": self.gpus}


@dataclass(frozen=True)
class Quota:
    """A project's ceiling on what its running workspaces hold together; None is unlimited."""

    gpus: int | None = None
    cpus: float | None = None
    memory: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        if self.gpus is not None:
            out["gpus"] = self.gpus
        if self.cpus is not None:
            out["cpus"] = self.cpus
        if self.memory is not None:
            out["memory"] = format_memory(self.memory)
        return out


def check_quota(
    project: str,
    quota: Quota,
    request: Resources,
    in_use: Mapping[str, Resources],
) -> None:
    """Refuse `request` if it and the project's running workspaces exceed `quota`.

    `in_use` maps a workspace owner ("alice" or "alice/ws2") to what it holds; the
    message names the quota, the current use and the largest holders, so the user
    knows whom to ask or what to stop.
    """
    used = sum(in_use.values(), Resources())
    # (what, its quota, in use, asked for, how an amount reads, a holder's amount); each
    # amount is a number of its own kind (int GPUs and bytes, float CPUs), read by its own format
    checks: tuple[
        tuple[str, float | None, float, float, Callable[[Any], str], Callable[[Resources], float]], ...
    ]
    checks = (
        ("GPUs", quota.gpus, used.gpus, request.gpus, str, lambda r: r.gpus),
        ("CPUs", quota.cpus, used.cpus, request.cpus, format_cpus, lambda r: r.cpus),
        ("memory", quota.memory, used.memory, request.memory, format_memory, lambda r: r.memory),
    )
    for what, limit, current, asked, fmt, amount in checks:
        if limit is None or current + asked <= limit:
            continue
        holders = sorted(in_use.items(), key=lambda item: amount(item[1]), reverse=True)
        top = ", ".join(f"{owner} {fmt(amount(r))}" for owner, r in holders[:3] if amount(r))
        raise PublicError(
            f"Project '{project}' has a quota of {fmt(limit)} {what}; {fmt(current)} are in use"
            f"{f' ({top})' if top else ''} and this workspace asks for {fmt(asked)}.",
            hint=f"ask for at most {fmt(max(limit - current, 0))} {what}, "
            "or stop a running workspace of the project",
            field=what.lower(),
        )

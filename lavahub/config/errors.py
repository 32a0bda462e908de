"""pydantic's ValidationError -> the one-line ConfigError that names the key path.

Only the first error is told (the way a person fixes a config: one key at a time),
as `a.b[1].c: problem`; never a pydantic dump.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from spawner.errors import ConfigError

from .fields import REFUSED

ROOT = "config"  # what a refusal of the whole document is called


def key_path(loc: Sequence[str | int]) -> str:
    """("templates", 1, "slug") -> "templates[1].slug"."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def one_line(error: ValidationError) -> ConfigError:
    first = error.errors(include_url=False)[0]
    ctx: dict[str, Any] = first.get("ctx") or {}
    loc = tuple(first["loc"])
    if first["type"] == REFUSED:
        if ctx.get("line"):
            return ConfigError(ctx["problem"], hint=ctx.get("hint"))
        if ctx.get("at"):
            loc += (ctx["at"],)
        problem = ctx["problem"]
    else:
        problem = _in_our_words(first["type"], first.get("input"), ctx, first["msg"])
    path = key_path(loc) or ROOT
    return ConfigError(f"{path}: {problem}", hint=ctx.get("hint"), field=path)


def _in_our_words(kind: str, value: Any, ctx: dict[str, Any], msg: str) -> str:
    """The few of pydantic's own errors our value types leave to it."""
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", ctx["expected"])
        return f"must be one of {', '.join(choices)}, got {value!r}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"must be a list, got {value!r}"
    if kind in ("dict_type", "mapping_type", "model_type", "model_attributes_type"):
        return f"must be a mapping of keys to values, got {type(value).__name__}"
    return msg[:1].lower() + msg[1:]

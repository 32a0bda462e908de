"""Small typed readers for untrusted mappings (config files, API bodies, user options).

Each raises `ConfigError` naming the key path, so every caller reports
"templates[1].max_gpus: must be a whole number >= 0, got 'two'" the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError, PublicError
from .resources import parse_memory


def where(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def fail(path: str, problem: str, error: type[PublicError] = ConfigError) -> PublicError:
    """The refusal of the value at `path`; without a path (the caller knows where), the problem alone."""
    return error(f"{path}: {problem}", field=path) if path else error(problem)


def mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(path, f"must be a mapping of keys to values, got {type(value).__name__}")
    return value


def no_unknown_keys(value: Mapping[str, Any], known: Iterable[str], path: str) -> None:
    known = list(known)
    for key in value:
        if key not in known:
            raise fail(
                where(path, str(key)),
                f"unknown key (known keys here: {', '.join(known)})",
            )


def string(
    value: Any,
    path: str,
    *,
    pattern: re.Pattern[str] | None = None,
    rule: str = "",
    allow_empty: bool = False,
) -> str:
    if not isinstance(value, str):
        raise fail(path, f"must be a string, got {value!r}")
    if not value and not allow_empty:
        raise fail(path, "must not be empty")
    if pattern is not None and value and not pattern.fullmatch(value):
        raise fail(path, f"{value!r} is not valid: use {rule}")
    return value


def whole(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(path, f"must be a whole number >= {minimum}, got {value!r}")
    if value < minimum:
        raise fail(path, f"must be a whole number >= {minimum}, got {value!r}")
    return value


def number(value: Any, path: str, *, positive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(path, f"must be a number, got {value!r}")
    if positive and value <= 0:
        raise fail(path, f"must be greater than 0, got {value!r}")
    if value < 0:
        raise fail(path, f"must not be negative, got {value!r}")
    return float(value)


def memory(value: Any, path: str) -> int:
    try:
        amount = parse_memory(value)
    except ValueError as e:
        raise fail(path, str(e)) from None
    if amount <= 0:
        raise fail(path, f"must be more than 0, got {value!r}")
    return amount


def string_list(
    value: Any, path: str, *, pattern: re.Pattern[str] | None = None, rule: str = ""
) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, list):
        raise fail(path, f"must be a list of strings, got {value!r}")
    return [string(item, where(path, i), pattern=pattern, rule=rule) for i, item in enumerate(value)]


def boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise fail(path, f"must be true or false, got {value!r}")
    return value

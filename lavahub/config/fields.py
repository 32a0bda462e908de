"""The building blocks of the config models: sections, typed values and refusals.

Every value type here checks its input itself (no silent coercion of "8000" to 8000)
and refuses with the same words `spawner.checks` uses, so a key reads the same
wherever it is validated. `refuse` is how a validator says no; `errors.one_line`
turns what it raised into the one-line ConfigError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from spawner.errors import ConfigError
from spawner.names import SLUG_PATTERN, SLUG_RULE, USER_PATTERN, USER_RULE
from spawner.resources import parse_memory

REFUSED = "lavahub"  # the error type of every refusal raised here


def refuse(problem: str, *, at: str | None = None, hint: str | None = None, line: bool = False) -> Exception:
    """A refusal of the value being validated. `at` names a key below it (for checks that
    span several keys); `line=True` says `problem` is a whole line already (it names its keys)."""
    return PydanticCustomError(
        REFUSED, "{problem}", {"problem": problem, "at": at, "hint": hint, "line": line}
    )


@contextmanager
def whole_lines() -> Iterator[None]:
    """Around the record validators of spawner (templates, projects): their ConfigError
    already names the key path, so it passes through as it is."""
    try:
        yield
    except ConfigError as e:
        raise refuse(e.message, hint=e.hint, line=True) from None


class Section(BaseModel):
    """A mapping in the config: frozen, known keys only, an empty (`null`) section is `{}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if data is None:
            return {}
        if not isinstance(data, Mapping):
            raise refuse(f"must be a mapping of keys to values, got {type(data).__name__}")
        known = list(cls.model_fields)
        for key in data:
            if key not in known:
                raise refuse(f"unknown key (known keys here: {', '.join(known)})", at=str(key))
        return data


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise refuse(f"must be a string, got {value!r}")
    if not value:
        raise refuse("must not be empty")
    return value


Text = Annotated[str, Field(min_length=1), BeforeValidator(_text)]
OptionalText = Annotated[str | None, BeforeValidator(lambda value: None if value is None else _text(value))]


def matching(pattern: re.Pattern[str], rule: str) -> Any:
    """A non-empty string that matches `pattern`; a mismatch is explained by `rule`."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise refuse(f"{value!r} is not valid: use {rule}")
        return value

    return Annotated[Text, AfterValidator(check), Field(json_schema_extra={"pattern": pattern.pattern})]


Slug = matching(SLUG_PATTERN, SLUG_RULE)
UserName = matching(USER_PATTERN, USER_RULE)


def _whole_number(minimum: int, optional: bool = False) -> Callable[[Any], int | None]:
    def check(value: Any) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise refuse(f"must be a whole number >= {minimum}, got {value!r}")
        return value

    return check


def whole(minimum: int, *, optional: bool = False) -> Any:
    """A whole number >= minimum (true and false are not numbers); with `optional`, or null."""
    number = Annotated[int, Field(ge=minimum)]
    return Annotated[number | None if optional else number, BeforeValidator(_whole_number(minimum, optional))]


def _tcp_port(value: Any) -> int:
    port = _whole_number(1)(value)
    if port > 65535:
        raise refuse(f"must be a TCP port (1-65535), got {port}")
    return port


Port = Annotated[int, Field(ge=1, le=65535), BeforeValidator(_tcp_port)]


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise refuse(f"must be true or false, got {value!r}")
    return value


Flag = Annotated[bool, BeforeValidator(_boolean)]


def _memory(value: Any) -> int:
    try:
        amount = parse_memory(value)
    except ValueError as e:
        raise refuse(str(e)) from None
    if amount <= 0:
        raise refuse(f"must be more than 0, got {value!r}")
    return amount


Memory = Annotated[
    int,
    BeforeValidator(_memory),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "examples": ["256Mi", "8Gi"]}]}
    ),
]


def _password(minimum: int) -> Callable[[Any], Any]:
    def check(value: Any) -> str | None:
        if value is None:
            return None
        if len(_text(value)) < minimum:
            raise refuse(
                f"must be at least {minimum} characters, got {len(value)}",
                hint="or leave it out and lavahub generates a strong one on first start",
            )
        return value

    return check


def password(minimum: int) -> Any:
    return Annotated[str | None, BeforeValidator(_password(minimum))]


def _path(value: Any, info: Any) -> Path:
    """A path; a relative one is relative to the config file (context `base`), else to the cwd."""
    path = Path(_text(value)).expanduser()
    base = (info.context or {}).get("base") or Path.cwd()
    return (path if path.is_absolute() else base / path).resolve()


def _optional_path(value: Any, info: Any) -> Path | None:
    return None if value is None else _path(value, info)


FilePath = Annotated[Path, BeforeValidator(_path), WithJsonSchema({"type": "string", "minLength": 1})]
OptionalPath = Annotated[
    Path | None, BeforeValidator(_optional_path), WithJsonSchema({"type": ["string", "null"], "minLength": 1})
]

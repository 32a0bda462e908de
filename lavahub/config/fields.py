"""The building blocks of the config models: sections, typed values and refusals.

Every value type is checked by `spawner.checks`, the rules templates and projects go
through too (no silent coercion of "8000" to 8000), so a key reads the same wherever it
is validated; pydantic only places the value and adds the JSON Schema. `refuse` is how a
validator says no; `errors.one_line` turns what it raised into the one-line ConfigError.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from spawner import checks
from spawner.errors import ConfigError
from spawner.names import SLUG_PATTERN, SLUG_RULE, USER_PATTERN, USER_RULE

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


def _checking(check: Callable[..., Any], **options: Any) -> Callable[[Any], Any]:
    """`check(value, path, **options)` of `spawner.checks` (its rules and its words, as for
    templates and projects) given no key path (pydantic knows where the value sits); what
    it refuses becomes a refusal here."""

    def validate(value: Any) -> Any:
        try:
            return check(value, "", **options)
        except ConfigError as e:
            at = e.field or None  # a key below the value (an unknown key of a mapping)
            raise refuse(e.message.removeprefix(f"{at}: "), at=at, hint=e.hint) from None

    return validate


def checked(check: Callable[..., Any], **options: Any) -> BeforeValidator:
    return BeforeValidator(_checking(check, **options))


def _optional(check: Callable[..., Any]) -> Callable[..., Any]:
    return lambda value, path, **options: None if value is None else check(value, path, **options)


class Section(BaseModel):
    """A mapping in the config: frozen, known keys only, an empty (`null`) section is `{}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        data = _checking(checks.mapping)(data)
        _checking(lambda value, path: checks.no_unknown_keys(value, cls.model_fields, path))(data)
        return data


Text = Annotated[str, Field(min_length=1), checked(checks.string)]
OptionalText = Annotated[str | None, checked(_optional(checks.string))]


def pattern_schema(pattern: re.Pattern[str]) -> Any:
    """The schema half of a string type that must match `pattern`: non-empty, the pattern."""
    return Field(min_length=1, json_schema_extra={"pattern": pattern.pattern})


def matching(pattern: re.Pattern[str], rule: str) -> BeforeValidator:
    """The check half: a string that matches `pattern`; a mismatch is explained by `rule`."""
    return checked(checks.string, pattern=pattern, rule=rule)


# A non-empty string that matches a pattern: Annotated[str, pattern_schema(P), matching(P, RULE)].
Slug = Annotated[str, pattern_schema(SLUG_PATTERN), matching(SLUG_PATTERN, SLUG_RULE)]
UserName = Annotated[str, pattern_schema(USER_PATTERN), matching(USER_PATTERN, USER_RULE)]

# Whole numbers >= a minimum (true and false are not numbers); the Optional one may be null.
Whole = Annotated[int, Field(ge=0), checked(checks.whole, minimum=0)]
Positive = Annotated[int, Field(ge=1), checked(checks.whole, minimum=1)]
OptionalPositive = Annotated[Annotated[int, Field(ge=1)] | None, checked(_optional(checks.whole), minimum=1)]


def _tcp_port(value: Any, path: str) -> int:
    port = checks.whole(value, path, minimum=1)
    if port > 65535:
        raise checks.fail(path, f"must be a TCP port (1-65535), got {port}")
    return port


Port = Annotated[int, Field(ge=1, le=65535), checked(_tcp_port)]
Flag = Annotated[bool, checked(checks.boolean)]
Memory = Annotated[
    int,
    checked(checks.memory),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "examples": ["512Mi"]}]}),
]


def _password(value: Any, path: str, minimum: int) -> str:
    text = checks.string(value, path)
    if len(text) < minimum:
        raise ConfigError(
            f"must be at least {minimum} characters, got {len(text)}",
            hint="or leave it out and lavahub generates a strong one on first start",
        )
    return text


AdminPassword = Annotated[str | None, checked(_optional(_password), minimum=32)]
UserPassword = Annotated[str | None, checked(_optional(_password), minimum=8)]


def _path(value: Any, info: Any) -> Path:
    """A path; a relative one is relative to the config file (context `base`), else to the cwd."""
    path = Path(_checking(checks.string)(value)).expanduser()
    base = (info.context or {}).get("base") or Path.cwd()
    return (path if path.is_absolute() else base / path).resolve()


def _optional_path(value: Any, info: Any) -> Path | None:
    return None if value is None else _path(value, info)


FilePath = Annotated[Path, BeforeValidator(_path), WithJsonSchema({"type": "string", "minLength": 1})]
OptionalPath = Annotated[
    Path | None, BeforeValidator(_optional_path), WithJsonSchema({"type": ["string", "null"], "minLength": 1})
]

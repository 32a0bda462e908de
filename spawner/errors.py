"""The one error type whose message may be shown to a user.

Everything else that goes wrong is logged and answered generically; raising
`PublicError` is how code says "this message is safe and useful for a person".
"""

from __future__ import annotations


class PublicError(Exception):
    """An error a user caused and can fix: a message, an optional hint and field."""

    def __init__(self, message: str, *, hint: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.field = field

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_json(self) -> dict[str, str]:
        body = {"error": self.message}
        if self.hint:
            body["hint"] = self.hint
        if self.field:
            body["field"] = self.field
        return body


class ConfigError(PublicError):
    """The platform config is invalid; the message names the key."""

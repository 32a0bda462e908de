"""The one error type whose message is meant for the person at the notebook.

IPython renders an exception that has ``_render_traceback_`` with the lines that
method returns instead of a traceback, so every lavahub error reads as one line:
``lavahub: <what went wrong> (<what to do about it>)``. Anything else that escapes
the magics is a bug, and shows its traceback like any other bug.
"""

from __future__ import annotations


class LavahubError(Exception):
    """An error the user can act on: shown as one line, never as a traceback."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or None

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def _render_traceback_(self) -> list[str]:
        return [f"lavahub: {self}"]

"""Waiting for something with a deadline, without Python 3.11's `asyncio.wait_for` race.

On 3.11, `wait_for` swallows a cancellation that arrives as the awaited thing completes
(CPython gh-86296): a loop around it then never ends, and a service that stops hangs.
`asyncio.wait` never swallows one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
_NOTHING = object()


async def within(awaitable: Awaitable[T], timeout: float) -> tuple[bool, T | None]:
    """(True, its result) if `awaitable` ends within `timeout` seconds, else (False, None)."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    finally:
        if not task.done():
            task.cancel()
    if not done:
        return False, None
    return True, task.result()

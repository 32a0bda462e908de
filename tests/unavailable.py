"""What a test that needs something absent does: skip saying so, or fail under CI, which must provide it."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def unavailable(reason: str) -> NoReturn:
    """Skip with `reason` (how to get what is missing); under CI (CI set), fail with it instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it", pytrace=False)
    pytest.skip(reason)

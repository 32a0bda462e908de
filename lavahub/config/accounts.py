"""`accounts`: one OS account per user when lavahub runs as root on the local backend."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from .fields import Section, matching, pattern_schema

PREFIX_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,15}$")
PREFIX_RULE = "lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 16"
Prefix = Annotated[str, pattern_schema(PREFIX_PATTERN), matching(PREFIX_PATTERN, PREFIX_RULE)]


class AccountsConfig(Section):
    """Who the local backend's workspaces and job workers run as (docs/security.md)."""

    mode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="auto: an OS account per user (and a group per project) when lavahub runs as root "
        "on the local backend, else everything runs as the platform's own OS user. on: require the "
        "accounts (refused unless root). off: every workspace and job runs as the platform's user, "
        "which keeps no user from another: for one person only.",
    )
    user_prefix: Prefix = Field(
        "lavahub-", description="Each user's account is this prefix + the user name (lavahub-alice)."
    )
    group_prefix: Prefix = Field(
        "lavahub-",
        description="Groups: <prefix>users (every account), <prefix>admins (hub admins: they write "
        "the global directory) and <prefix>p-<project> per project.",
    )

"""Names that reach paths, labels and shells: validation and safe segments.

Only `safe_segment` turns a user or project name into a path segment or label
value; nothing else builds a storage path from a raw name.
"""

from __future__ import annotations

import hashlib
import re

# DNS-1123 label: what project names and template slugs must already be.
SLUG_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SLUG_RULE = (
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters"
)

# What JupyterHub user names may be for lavahub (they reach paths through safe_segment).
USER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
USER_RULE = "letters, digits and . _ @ + -, starting with a letter or digit, at most 128 characters"

# A Kubernetes label key: an optional DNS-subdomain prefix and a name of at most 63 characters.
LABEL_KEY_PATTERN = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_KEY_RULE = "a Kubernetes label key such as nvidia.com/gpu.product"

# Environment variable names.
ENV_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_UNSAFE = re.compile(r"[^a-z0-9-]+")
_MAX_SEGMENT = 63


def is_slug(name: str) -> bool:
    return isinstance(name, str) and bool(SLUG_PATTERN.fullmatch(name))


def is_user_name(name: str) -> bool:
    return isinstance(name, str) and bool(USER_PATTERN.fullmatch(name))


def safe_segment(name: str) -> str:
    """A path segment / label value for `name` that cannot escape or collide.

    Names that are already slugs are kept as they are, so paths stay readable.
    Any other name is lowercased, its unsafe characters folded to '-', and a
    hash of the original appended: `Alice.Smith@x.org` and `alice-smith-x-org`
    therefore never share a directory.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a name is required to build a path segment")
    if SLUG_PATTERN.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    folded = _UNSAFE.sub("-", name.lower()).strip("-")
    folded = folded[: _MAX_SEGMENT - len(digest) - 1].rstrip("-")
    return f"{folded}-{digest}" if folded else digest

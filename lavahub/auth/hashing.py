"""Password hashes: scrypt with a random salt per password, checked in constant time.

A hash is one string, `scrypt$<n>$<r>$<p>$<salt>$<key>` (base64), so its cost travels with it
and stronger parameters later still check the hashes made before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # ~16 MiB and some 50 ms per check: slow for guessing, fine for a login
KEY_BYTES = 32
SALT_BYTES = 16


def new_password() -> str:
    """A strong password to hand a user (22 URL-safe characters, 128 bits)."""
    return secrets.token_urlsafe(16)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(password, salt, N, R, P)
    return "$".join((SCHEME, str(N), str(R), str(P), _b64(salt), _b64(key)))


def verify_password(password: str, hashed: str | None) -> bool:
    """Whether `password` is the one `hashed` was made from. With no hash (an unknown user) it
    still spends the same work, so the answer's timing does not tell which users exist."""
    if hashed is None:
        hmac.compare_digest(_derive(password, b"\0" * SALT_BYTES, N, R, P), b"\0" * KEY_BYTES)
        return False
    try:
        scheme, n, r, p, salt, key = hashed.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(key)
        derived = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(derived, expected)


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES, maxmem=128 * r * (n + p + 2) * 2
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

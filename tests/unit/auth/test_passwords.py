"""Password hashes and the store that keeps them: salted, checked in constant time, never plain."""

import sqlite3

from lavahub.auth.hashing import hash_password, new_password, verify_password
from lavahub.auth.store import PasswordStore


def test_a_hash_checks_its_own_password_only():
    hashed = hash_password("correct horse")
    assert hashed.startswith("scrypt$16384$8$1$") and "correct horse" not in hashed
    assert verify_password("correct horse", hashed)
    assert not verify_password("correct horsf", hashed)
    assert not verify_password("", hashed)


def test_every_hash_has_its_own_salt():
    assert hash_password("same") != hash_password("same")


def test_no_hash_and_damaged_hashes_never_verify():
    assert not verify_password("anything", None)
    for damaged in ("", "plain", "md5$1$2$3$abc$def", "scrypt$x$8$1$abc$def", "scrypt$16384$8$1$!!$??"):
        assert not verify_password("anything", damaged)


def test_new_passwords_are_long_and_different():
    passwords = {new_password() for _ in range(20)}
    assert len(passwords) == 20 and min(len(p) for p in passwords) >= 20


def test_ensure_gives_only_users_without_a_password_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    store = PasswordStore(url)
    first = store.ensure(["admin", "alice"])
    assert set(first) == {"admin", "alice"} and first["admin"] != first["alice"]
    assert store.ensure(["admin", "alice"]) == {}
    later = store.ensure(["admin", "alice", "carol"])
    assert set(later) == {"carol"}
    assert store.verify("alice", first["alice"]) and not store.verify("alice", first["admin"])
    assert not store.verify("mallory", first["alice"])
    with sqlite3.connect(tmp_path / "lavahub.sqlite") as connection:
        stored = " ".join(row[0] for row in connection.execute("SELECT hash FROM passwords"))
    assert not any(password in stored for password in (*first.values(), *later.values()))


def test_reset_and_set_replace_the_old_password(tmp_path):
    store = PasswordStore(f"sqlite:///{tmp_path / 'lavahub.sqlite'}")
    old = store.ensure(["alice"])["alice"]
    new = store.reset("alice", by="root")
    assert store.verify("alice", new) and not store.verify("alice", old)
    store.set("alice", "chosen-by-alice", by="alice")
    assert store.verify("alice", "chosen-by-alice") and not store.verify("alice", new)
    [info] = store.list()
    assert (info.user, info.changed_by) == ("alice", "alice")

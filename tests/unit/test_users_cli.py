"""`lavahub users list|reset-password`: real process, real exit codes, the password shown once."""

import re

import yaml

from lavahub.auth.store import PasswordStore
from tests.unit.test_cli import lavahub


def platform(tmp_path, **raw):
    path = tmp_path / "lavahub.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **raw}))
    return str(path), f"sqlite:///{tmp_path / 'data' / 'lavahub.sqlite'}"


def test_reset_password_prints_a_new_password_that_replaces_the_old(tmp_path):
    config, url = platform(tmp_path)
    old = PasswordStore(url).ensure(["admin", "alice", "bob"])
    result = lavahub("users", "reset-password", "alice", "--config", config)
    assert result.returncode == 0, result.stderr
    [new] = re.findall(r"^new password of alice: (\S+)$", result.stdout, re.MULTILINE)
    store = PasswordStore(url)
    assert store.verify("alice", new) and not store.verify("alice", old["alice"])
    assert store.verify("bob", old["bob"]), "other users keep theirs"
    listing = lavahub("users", "list", "--config", config)
    assert listing.returncode == 0, listing.stderr
    assert new not in listing.stdout
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()[1:]}
    assert set(lines) == {"admin", "alice", "bob"}
    assert "admin" in lines["admin"].split()[1] and "set " in lines["alice"]


def test_reset_password_refuses_unknown_users_and_other_auth_types(tmp_path):
    config, _ = platform(tmp_path)
    unknown = lavahub("users", "reset-password", "mallory", "--config", config)
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "'mallory' is not a user of this platform" in unknown.stderr
    shared, _ = platform(tmp_path, auth={"type": "shared"})
    refused = lavahub("users", "reset-password", "alice", "--config", shared)
    assert refused.returncode == 2 and "auth.type is shared" in refused.stderr


def test_list_before_any_start_says_who_has_no_password_yet(tmp_path):
    config, _ = platform(tmp_path)
    listing = lavahub("users", "list", "--config", config)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("none yet") == 3

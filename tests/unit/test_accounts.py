"""OS accounts per user, the storage tree's owners, and what `up` says without them."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from lavahub import local_setup
from lavahub.config import parse_config
from spawner.accounts import MAX_NAME, AccountError, Naming, ensure_account, lookup, os_name
from spawner.ownership import link_home, protect, unreachable
from tests.conftest import passable

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making OS accounts needs root")


def test_names_are_kept_when_valid_and_folded_with_a_hash_otherwise():
    assert os_name("alice", "lavahub-") == "lavahub-alice"
    odd = os_name("Alice.Smith@x.org", "lavahub-")
    assert odd.startswith("lavahub-alice-smith-x") and len(odd) == MAX_NAME
    assert os_name("a.b", "lavahub-") != os_name("a-b", "lavahub-") == "lavahub-a-b"
    long = os_name("x" * 100, "lavahub-")
    assert len(long) == MAX_NAME and long != os_name("x" * 99, "lavahub-")
    naming = Naming()
    assert (naming.project("vision"), naming.users_group, naming.admins_group) == (
        "lavahub-p-vision",
        "lavahub-users",
        "lavahub-admins",
    )
    with pytest.raises(AccountError, match="leaves no room"):
        os_name("Alice!", "p" * 30)


@pytest.fixture
def naming() -> Iterator[Naming]:
    """A prefix of this test's own; its accounts and groups are removed afterwards."""
    prefix = f"lht{uuid.uuid4().hex[:5]}-"
    yield Naming(prefix, prefix)
    for entry in pwd.getpwall():
        if entry.pw_name.startswith(prefix):
            subprocess.run(["userdel", entry.pw_name], check=False)
    for group in grp.getgrall():
        if group.gr_name.startswith(prefix):
            subprocess.run(["groupdel", group.gr_name], check=False)


@as_root
def test_an_account_is_made_once_and_follows_the_configs_groups(naming, tmp_path):
    groups = [naming.project("default"), naming.project("vision")]
    made = ensure_account("alice", home=str(tmp_path), groups=groups, naming=naming)
    entry = pwd.getpwnam(made.name)
    assert (entry.pw_dir, entry.pw_shell, entry.pw_gecos) == (
        str(tmp_path),
        "/bin/bash",
        "lavahub user alice",
    )
    assert entry.pw_gid == grp.getgrnam(naming.users_group).gr_gid
    assert {grp.getgrgid(g).gr_name for g in made.groups} == {naming.users_group, *groups}
    # alice left vision: her account leaves its group
    again = ensure_account("alice", home=str(tmp_path), groups=groups[:1], naming=naming)
    assert again.uid == made.uid
    assert made.name not in grp.getgrnam(naming.project("vision")).gr_mem
    assert lookup("alice", naming).groups == again.groups


@as_root
def test_an_account_lavahub_did_not_make_is_never_adopted(naming, tmp_path):
    name = naming.user("mallory")
    subprocess.run(["useradd", "--no-create-home", "--comment", "someone else", name], check=True)
    with pytest.raises(AccountError, match="was not made by lavahub"):
        ensure_account("mallory", home=str(tmp_path), groups=[], naming=naming)
    with pytest.raises(AccountError, match="was not made by lavahub"):
        lookup("mallory", naming)
    with pytest.raises(AccountError, match="has no OS account"):
        lookup("nobody-here", naming)


def test_a_planted_projects_link_is_not_followed(tmp_path):
    """A user who makes `projects` a link to another directory gets nothing removed there."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (elsewhere / "precious").symlink_to("/etc")
    (home / "projects").symlink_to(elsewhere)
    link_home(
        home, {str(home / "projects/default"): "/srv/default", str(home / "global"): "/srv/g"}, [], None
    )
    assert (elsewhere / "precious").is_symlink()  # untouched
    assert not (elsewhere / "default").exists()
    assert os.readlink(home / "global") == "/srv/g"


def test_links_are_made_and_stale_ones_removed(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "projects").mkdir()
    (home / "projects/left").symlink_to("/srv/left")
    (home / "projects/mine").mkdir()  # the user's own directory stays
    link_home(home, {str(home / "projects/default"): "/srv/default"}, ["default"], None)
    assert sorted(p.name for p in (home / "projects").iterdir()) == ["default", "mine"]
    assert os.readlink(home / "projects/default") == "/srv/default"


def test_protect_closes_the_platforms_files_and_keeps_the_storage_open(tmp_path):
    (tmp_path / "lavahub.sqlite").write_text("")
    (tmp_path / "lavahub.sqlite").chmod(0o644)
    (tmp_path / "users").mkdir(mode=0o711)
    (tmp_path / "users").chmod(0o711)
    assert protect(tmp_path, keep_open=[tmp_path / "users"]) == ["lavahub.sqlite"]
    assert stat.S_IMODE((tmp_path / "lavahub.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "users").stat().st_mode) == 0o711


def test_unreachable_names_the_first_closed_directory(tmp_path):
    closed = passable(tmp_path) / "closed"
    (closed / "inside").mkdir(parents=True)
    closed.chmod(0o700)
    assert unreachable(closed / "inside") == closed
    closed.chmod(0o711)
    assert unreachable(closed / "inside") is None
    assert unreachable(closed / "not-made-yet") is None  # lavahub makes it, with its mode


def test_without_accounts_up_says_everything_runs_as_one_os_user(tmp_path):
    config = parse_config({"data_dir": str(tmp_path), "accounts": {"mode": "off"}})
    (line,) = local_setup.prepare(config)
    assert line.startswith("accounts:       none: every workspace and job runs as the OS user")
    assert "not kept apart" in line
    assert not config.os_accounts

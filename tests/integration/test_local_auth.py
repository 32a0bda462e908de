"""`auth.type: local` on a real hub: a password per user, shown once, changed by its user on the
change-password page, reset by the operator with `lavahub users reset-password`."""

from __future__ import annotations

import re
import subprocess

import pytest
import requests

from tests.hubclient import HubClient
from tests.integration.conftest import LAVAHUB, PLATFORM, printed_passwords, start_platform

pytestmark = pytest.mark.integration

LOCAL = {**PLATFORM, "auth": {"type": "local", "min_password_length": 12}}


def change_password(user: HubClient, current: str, new: str, confirm: str | None = None) -> requests.Response:
    fields = {"current_password": current, "new_password": new, "confirm_password": confirm or new}
    return user.submit_form("hub/change-password", fields)


def test_own_passwords_shown_once_changed_by_the_user_and_reset_by_the_operator(tmp_path):
    first = start_platform(tmp_path, LOCAL)
    try:
        passwords = printed_passwords(first.log())
        assert set(passwords) == {"admin", "alice", "bob"}
        assert len(set(passwords.values())) == 3
        assert "  passwords:      3 users, in the database\n" in first.log()
        alice = HubClient(first.url, "alice", passwords["alice"])
        assert alice.api("GET", "user").json()["name"] == "alice"
        assert HubClient(first.url, "admin", passwords["admin"]).api("GET", "user").json()["admin"] is True
        for user in ("bob", "admin", "mallory"):
            with pytest.raises(PermissionError):
                HubClient(first.url, user, passwords["alice"])  # alice's password is alice's only
        assert first.log().count(passwords["alice"]) == 1, "shown once, never logged (failed logins neither)"

        # the change-password page: the hub's own page, for the logged-in user only
        page = alice.page("hub/change-password")
        assert page.status_code == 200
        assert 'name="current_password"' in page.text and "at least 12 characters" in page.text
        assert "/hub/logout" in page.text, "the hub's page.html, with its navigation bar"
        home = alice.page("hub/home")
        assert 'href="/hub/change-password"' in home.text, "every hub page links to it"
        anonymous = requests.get(f"{first.url}/hub/change-password", allow_redirects=False, timeout=10)
        assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["Location"]
        new = "alice-chose-this-one"
        fields = {"current_password": passwords["alice"], "new_password": new, "confirm_password": new}
        no_xsrf = requests.post(
            f"{first.url}/hub/change-password", data=fields, cookies=alice.session.cookies, timeout=10
        )
        assert no_xsrf.status_code == 403
        refused = {
            "not right": change_password(alice, "not-her-password", new),
            "at least 12": change_password(alice, passwords["alice"], "short"),
            "differ": change_password(alice, passwords["alice"], new, confirm=new + "!"),
        }
        for words, response in refused.items():
            assert response.status_code == 400 and words in response.text, words
        changed = change_password(alice, passwords["alice"], new)
        assert changed.status_code == 200 and "Your password is changed" in changed.text
        with pytest.raises(PermissionError):
            HubClient(first.url, "alice", passwords["alice"])
        HubClient(first.url, "alice", new)

        # the operator resets it (the hub keeps running)
        reset = subprocess.run(
            [LAVAHUB, "users", "reset-password", "alice", "--config", str(first.config_file)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert reset.returncode == 0, reset.stderr
        [issued] = re.findall(r"^new password of alice: (\S+)$", reset.stdout, re.MULTILINE)
        with pytest.raises(PermissionError):
            HubClient(first.url, "alice", new)
        HubClient(first.url, "alice", issued)
    finally:
        first.stop()

    # the next start shows no password again, but gives a user added since one of their own
    projects = {**LOCAL["projects"], "nlp": {"members": ["carol"]}}
    second = start_platform(tmp_path, {**LOCAL, "projects": projects})
    try:
        again = printed_passwords(second.log())
        assert set(again) == {"carol"}
        assert not any(p in second.log() for p in passwords.values())
        assert "  passwords:      4 users, in the database\n" in second.log()
        HubClient(second.url, "alice", issued)
        HubClient(second.url, "carol", again["carol"])
    finally:
        second.stop()

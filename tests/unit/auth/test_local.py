"""LocalPasswordAuthenticator: own passwords, failures logged without the password and limited."""

import logging
from types import SimpleNamespace

import pytest

from lavahub.auth.local import ChangePasswordHandler, LocalPasswordAuthenticator
from lavahub.auth.store import PasswordStore


@pytest.fixture
def setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'lavahub.sqlite'}"
    passwords = PasswordStore(url).ensure(["alice", "bob"])
    authenticator = LocalPasswordAuthenticator(database_url=url, failure_delay=0, failure_limit=3)
    return authenticator, passwords


def login(username, password):
    return {"username": username, "password": password}


HANDLER = SimpleNamespace(request=SimpleNamespace(remote_ip="192.0.2.7"))


async def test_each_user_logs_in_with_their_own_password_only(setup):
    authenticator, passwords = setup
    assert await authenticator.authenticate(HANDLER, login("alice", passwords["alice"])) == "alice"
    assert await authenticator.authenticate(HANDLER, login("bob", passwords["alice"])) is None
    assert await authenticator.authenticate(HANDLER, login("mallory", passwords["alice"])) is None
    assert await authenticator.authenticate(HANDLER, login("bob", passwords["bob"])) == "bob"


async def test_failures_are_logged_without_the_password(setup, caplog):
    authenticator, passwords = setup
    authenticator.log = logging.getLogger("test-auth")
    with caplog.at_level(logging.WARNING, logger="test-auth"):
        await authenticator.authenticate(HANDLER, login("bob", "guess-" + passwords["bob"]))
    assert "Failed login of 'bob' from 192.0.2.7" in caplog.text
    assert passwords["bob"] not in caplog.text


async def test_repeated_failures_refuse_the_name_until_the_window_passes(setup):
    authenticator, passwords = setup
    for _ in range(3):
        assert await authenticator.authenticate(HANDLER, login("alice", "wrong")) is None
    # now even the right password is refused for alice; bob is not affected
    assert await authenticator.authenticate(HANDLER, login("alice", passwords["alice"])) is None
    assert await authenticator.authenticate(HANDLER, login("bob", passwords["bob"])) == "bob"
    authenticator.failure_window = 0  # the window has passed
    assert await authenticator.authenticate(HANDLER, login("alice", passwords["alice"])) == "alice"


def test_the_change_password_page_is_a_hub_handler(setup):
    authenticator, _ = setup
    assert ("/change-password", ChangePasswordHandler) in authenticator.get_handlers(None)

"""`auth.type: oauth` end to end: a real hub, a small real OpenID provider on loopback
(tests/integration/oidc_provider.py), and logins through the real redirects."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
import requests

from tests.hubclient import HubClient
from tests.integration.conftest import PLATFORM, Platform, start_platform
from tests.integration.oidc_provider import Person, Provider

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    running = Provider()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, provider) -> Iterator[Platform]:
    directory = tmp_path_factory.mktemp("oauth")
    secret = directory / "client-secret"
    secret.write_text(provider.client_secret + "\n")
    oauth = {
        "client_id": provider.client_id,
        "client_secret_file": str(secret),
        "issuer": provider.issuer,  # the endpoints come from its discovery document
        "admin_groups": ["ml-admins"],
        "login_service": "Test ID",
    }
    running = start_platform(directory, {**PLATFORM, "auth": {"type": "oauth", "oauth": oauth}})
    provider.redirect_uri = f"{running.url}/hub/oauth_callback"  # registered now its address is known
    yield running
    running.stop()


def log_in(hub: Platform, provider: Provider, person: Person) -> tuple[requests.Session, requests.Response]:
    """What a browser does: the hub's login button, the provider's redirect back, the hub's callback."""
    provider.next_user = person
    provider.requests.clear()
    session = requests.Session()
    response = session.get(f"{hub.url}/hub/oauth_login", params={"next": "/hub/home"}, timeout=30)
    return session, response


def test_the_login_page_offers_the_provider(hub):
    page = requests.get(f"{hub.url}/hub/login", timeout=10)
    assert page.status_code == 200 and "Sign in with Test ID" in page.text


def test_alice_logs_in_through_the_provider_as_alice(hub, provider):
    session, response = log_in(hub, provider, Person("alice"))
    assert response.status_code == 200, response.text
    assert [urlparse(r.headers["Location"]).path for r in response.history] == [
        "/authorize", "/hub/oauth_callback", "/hub/home",
    ]  # fmt: skip
    assert provider.requests == ["GET /authorize", "POST /token", "GET /userinfo"]
    assert provider.pkce[-1], "the hub sent a PKCE challenge and its verifier"
    alice = HubClient(hub.url, "alice", None, session=session)
    model = alice.api("GET", "user").json()
    assert (model["name"], model["admin"]) == ("alice", False)
    assert {"default", "vision"} <= set(model["groups"]), "project membership stays the config's"


def test_a_user_the_provider_names_but_the_config_does_not_is_refused(hub, provider):
    session, response = log_in(hub, provider, Person("mallory"))
    assert response.status_code == 403
    assert provider.requests == ["GET /authorize", "POST /token", "GET /userinfo"]
    home = session.get(f"{hub.url}/hub/home", allow_redirects=False, timeout=10)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]


def test_members_of_an_admin_group_log_in_as_admins(hub, provider):
    session, response = log_in(hub, provider, Person("dana", groups=("ml-admins",)))
    assert response.status_code == 200, response.text
    assert HubClient(hub.url, "dana", None, session=session).api("GET", "user").json()["admin"] is True


def test_a_forged_callback_is_refused(hub, provider):
    provider.requests.clear()
    made_up = {"code": "made-up", "state": "x"}
    forged = requests.get(f"{hub.url}/hub/oauth_callback", params=made_up, timeout=10)
    assert forged.status_code in (400, 403)
    assert provider.requests == [], "without the login's state cookie the hub asks the provider nothing"

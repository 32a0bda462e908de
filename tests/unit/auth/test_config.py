"""`auth` in the platform config: the type, its settings, and what the platform refuses."""

import pytest

from lavahub.config import parse_config
from spawner.errors import ConfigError

OAUTH = {"client_id": "lavahub", "client_secret": "s3cret", "issuer": "https://id.example.org"}


def test_local_is_the_default():
    auth = parse_config({}).auth
    assert (auth.type, auth.oauth, auth.min_password_length) == ("local", None, 10)


def test_the_shared_passwords_alone_still_mean_shared():
    auth = parse_config({"auth": {"admin_password": "a" * 32, "user_password": "u" * 8}}).auth
    assert auth.type == "shared"
    assert parse_config({"auth": {"type": "shared"}}).auth.admin_password is None


def test_oauth_with_an_issuer_or_with_every_endpoint():
    given = parse_config({"auth": {"type": "oauth", "oauth": OAUTH}}).auth.oauth
    assert given is not None and given.scope == ("openid", "profile", "email")
    endpoints = {"authorize_url": "https://x/a", "token_url": "https://x/t", "userdata_url": "https://x/u"}
    raw = {"client_id": "c", "client_secret_file": "/run/secret", **endpoints}
    oauth = parse_config({"auth": {"type": "oauth", "oauth": raw}}).auth.oauth
    assert oauth is not None and oauth.issuer is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"auth": {"type": "ldap"}}, "auth.type: must be one of local, shared, oauth, pam, got 'ldap'"),
        ({"auth": {"type": "local", "user_password": "u" * 8}}, "auth.user_password: is for auth.type shared only (auth.type is local)"),
        ({"auth": {"type": "oauth"}}, "auth.oauth: is required for auth.type oauth"),
        ({"auth": {"oauth": OAUTH}}, "auth.oauth: is for auth.type oauth only (auth.type is local)"),
        ({"auth": {"type": "oauth", "oauth": {"client_secret": "s", "issuer": "https://x"}}}, "auth.oauth.client_id: is required"),
        ({"auth": {"type": "oauth", "oauth": {"client_id": "c", "issuer": "https://x"}}}, "auth.oauth.client_secret: is required (or client_secret_file)"),
        ({"auth": {"type": "oauth", "oauth": {**OAUTH, "client_secret_file": "/s"}}}, "auth.oauth.client_secret_file: give client_secret or client_secret_file, not both"),
        ({"auth": {"type": "oauth", "oauth": {"client_id": "c", "client_secret": "s", "token_url": "https://x/t"}}}, "auth.oauth.issuer: is required unless"),
        ({"auth": {"type": "oauth", "oauth": {**OAUTH, "issuerr": "x"}}}, "auth.oauth.issuerr: unknown key"),
        ({"auth": {"min_password_length": 0}}, "auth.min_password_length: must be a whole number >= 1"),
    ],
)  # fmt: skip
def test_invalid_auth_names_the_key(raw, message):
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "raw",
    [
        {"backend": "kubernetes", "bind": "0.0.0.0", "auth": {"type": "shared"}},
        {"backend": "kubernetes", "auth": {"admin_password": "a" * 32}},  # implied shared
        {"backend": "local", "bind": "10.0.0.5", "auth": {"type": "shared"}},
    ],
)
def test_a_shared_password_is_refused_beyond_loopback_and_on_kubernetes(raw):
    with pytest.raises(ConfigError) as refused:
        parse_config(raw)
    line = str(refused.value)
    assert line.startswith("auth.type: shared passwords let any user log in as any other")
    assert "\n" not in line


def test_every_other_type_is_fine_on_kubernetes():
    for kind in ("local", "pam"):
        assert (
            parse_config({"backend": "kubernetes", "bind": "0.0.0.0", "auth": {"type": kind}}).auth.type
            == kind
        )
    assert parse_config({"auth": {"type": "shared"}}).auth.type == "shared"  # loopback, local backend

"""`auth.type: oauth`: an OpenID Connect provider through oauthenticator's GenericOAuthenticator.

What lavahub adds: the endpoints from the issuer's discovery document, the client secret from
a file, and admins from the provider's groups claim (`admin_groups`) without handing the hub's
groups to the provider: lavahub's projects are the hub's groups, so `manage_groups` stays off.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from oauthenticator.generic import GenericOAuthenticator
from traitlets import Set, Unicode

from lavahub.config.auth import OAuthConfig
from spawner.errors import ConfigError

DISCOVERY = "/.well-known/openid-configuration"
ENDPOINTS = {"authorize_url": "authorization_endpoint", "token_url": "token_endpoint",
             "userdata_url": "userinfo_endpoint"}  # fmt: skip


class OIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator; members of `admin_groups` (in the userinfo's `groups_claim`) are admins."""

    groups_claim = Unicode("groups", config=True, help="The userinfo claim that lists the user's groups.")
    admin_groups_claimed = Set(
        Unicode(), config=True, help="Members of these provider groups log in as hub admins."
    )

    async def update_auth_model(self, auth_model: dict[str, Any]) -> dict[str, Any]:
        auth_model = await super().update_auth_model(auth_model)
        userinfo = (auth_model.get("auth_state") or {}).get(self.user_auth_state_key) or {}
        groups = userinfo.get(self.groups_claim) or []
        if isinstance(groups, list) and self.admin_groups_claimed & {str(g) for g in groups}:
            auth_model["admin"] = True
        return auth_model


def discover(issuer: str, timeout: float = 10) -> dict[str, str]:
    """The provider's endpoints (authorize_url, token_url, userdata_url) from its discovery document."""
    url = issuer.rstrip("/") + DISCOVERY
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"auth.oauth.issuer: cannot read {url}: {e}", field="auth.oauth.issuer",
            hint="check the issuer URL, or give authorize_url, token_url and userdata_url",
        ) from None  # fmt: skip
    if not isinstance(document, dict):
        document = {}
    missing = [key for key in ENDPOINTS.values() if not isinstance(document.get(key), str)]
    if missing:
        raise ConfigError(
            f"auth.oauth.issuer: {url} names no {', '.join(missing)}", field="auth.oauth.issuer"
        )
    return {ours: document[theirs] for ours, theirs in ENDPOINTS.items()}


def traits(oauth: OAuthConfig) -> dict[str, Any]:
    """OIDCAuthenticator's settings for `auth.oauth`: the secret read, the endpoints discovered
    (explicit ones win). Raises ConfigError naming the key when the secret or the issuer fails."""
    secret = oauth.client_secret
    if oauth.client_secret_file is not None:
        try:
            secret = oauth.client_secret_file.read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"auth.oauth.client_secret_file: cannot read {oauth.client_secret_file}: {e.strerror}",
                field="auth.oauth.client_secret_file",
            ) from None
    given = {key: getattr(oauth, key) for key in ENDPOINTS if getattr(oauth, key)}
    endpoints = given if len(given) == len(ENDPOINTS) else {**discover(oauth.issuer or ""), **given}
    return {
        "client_id": oauth.client_id,
        "client_secret": secret,
        **endpoints,
        "oauth_callback_url": oauth.callback_url or "",
        "username_claim": oauth.username_claim,
        "scope": list(oauth.scope),
        "login_service": oauth.login_service,
        "groups_claim": oauth.groups_claim,
        "admin_groups_claimed": set(oauth.admin_groups),
    }

"""A notebook server as the hub starts it, for the lab extension's server side: env and test hub users.

alice owns the server; bob may visit it. The tokens are their logins to it (what
JupyterHub's identity provider finds in a browser's request), answered by the
test hub of `jobs_service`.
"""

from __future__ import annotations

import json

from .hub_api import user_model
from .jobs_service import ACCESS, TOKEN, JobsService

SERVER = "access:servers!server=alice/"
ALICE_BROWSER = "alice-oauth-token"  # alice's login to her own server
BOB_BROWSER = "bob-oauth-token"  # bob, visiting alice's server (it is shared with him)
BOB_NO_JOBS = "bob-oauth-token-without-jobs"  # bob's login, issued without access to the jobs service
IDENTITY = "jupyterhub.singleuser.extension.JupyterHubIdentityProvider"
AUTHORIZER = "jupyterhub.singleuser.extension.JupyterHubAuthorizer"


def add_users(service: JobsService) -> None:
    service.hub.users.update(
        {
            ALICE_BROWSER: user_model("alice", ["default", "vision"], scopes=[ACCESS, SERVER]),
            BOB_BROWSER: user_model("bob", ["default"], scopes=[ACCESS, SERVER]),
            BOB_NO_JOBS: user_model("bob", ["default"], scopes=[SERVER]),
        }
    )


def server_env(service: JobsService, base_url: str) -> dict[str, str]:
    """What the hub and the lavahub spawner put in alice's server's environment."""
    return {
        "JUPYTERHUB_API_URL": service.hub_url,
        "JUPYTERHUB_API_TOKEN": TOKEN,  # the server's own token: alice's
        "JUPYTERHUB_CLIENT_ID": "jupyterhub-user-alice",
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVICE_PREFIX": base_url,
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": json.dumps([SERVER]),
        "JUPYTERHUB_OAUTH_CALLBACK_URL": base_url + "oauth_callback",
        "LAVAHUB_JOBS_URL": service.url,
        "LAVAHUB_PROJECT": "vision",
        "LAVAHUB_TEMPLATE": "pytorch",
    }

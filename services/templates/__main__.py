"""`python -m services.templates`: the templates service, started and kept running by the hub."""

from __future__ import annotations

import logging
import os
import sys
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth

from lavahub.config import load_config
from spawner.base import template_store

from ..api import listen_address, run_service, until_terminated
from .app import make_app
from .context import Context


async def serve() -> None:
    config = load_config()
    # tokens for the API, the hub's OAuth (a cookie) for the pages; the one instance that
    # JupyterHub's own OAuth callback handler also uses (it keeps the OAuth state)
    hub_auth = HubOAuth.instance(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    ctx = Context(template_store(config.database_url), hub_auth)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/templates/")
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    make_app(ctx, prefix, cookie_secret=os.urandom(32)).listen(
        url.port or config.templates_service.port, address=listen_address(url), xheaders=True
    )
    logging.getLogger(__name__).info("templates service listening on %s%s", url.geturl().rstrip("/"), prefix)
    await until_terminated()


def main() -> int:
    return run_service("templates", serve)


if __name__ == "__main__":
    sys.exit(main())

"""`python -m services.jobs`: the jobs service, started and kept running by the hub."""

from __future__ import annotations

import logging
import os
import sys
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth

from lavahub.config import load_config

from ..api import listen_address, run_service, until_terminated
from .app import Context, make_app
from .backends import load_backend


async def serve() -> None:
    config = load_config()
    backend = load_backend(config)
    hub_auth = HubAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    ctx = Context(config, backend, hub_auth)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/jobs/")
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{config.jobs.port}"))
    app = make_app(ctx, prefix)
    app.listen(url.port or config.jobs.port, address=listen_address(url), xheaders=True)
    logging.getLogger(__name__).info("jobs service listening on %s%s", url.geturl().rstrip("/"), prefix)
    await backend.setup()
    ctx.supervisor.start()
    await until_terminated()
    await ctx.supervisor.stop()
    await backend.cleanup()


def main() -> int:
    return run_service("jobs", serve)


if __name__ == "__main__":
    sys.exit(main())

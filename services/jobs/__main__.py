"""`python -m services.jobs`: the jobs service, started and kept running by the hub."""

from __future__ import annotations

import logging
import os
import sys
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth

from lavahub.config import load_config
from spawner.gpus import inventory

from ..api import run_service, until_terminated
from .app import Context, make_app
from .backends.ray import RayBackend


def ray_backend(config) -> RayBackend:  # type: ignore[no-untyped-def]
    ray = config.jobs.ray
    backend = RayBackend(
        address=ray.address or "",
        state_dir=str(config.data_dir / "ray"),
        port=ray.port,
        dashboard_port=ray.dashboard_port,
        num_cpus=ray.num_cpus or 0,
        num_gpus=len(inventory()),
        object_store_memory=ray.object_store_memory,
        start_timeout=ray.start_timeout,
    )
    return backend


async def serve() -> None:
    config = load_config()
    backend = ray_backend(config)
    hub_auth = HubAuth(api_token=os.environ["JUPYTERHUB_API_TOKEN"], cache_max_age=60)
    ctx = Context(config, backend, hub_auth)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/jobs/")
    url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", f"http://127.0.0.1:{config.jobs.port}"))
    app = make_app(ctx, prefix)
    app.listen(url.port, address=url.hostname or "127.0.0.1", xheaders=True)
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

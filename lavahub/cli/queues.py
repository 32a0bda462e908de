"""`lavahub queues sync`: one Volcano Queue per project, capped at the project's quota."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import yaml

from lavahub.config import load_config
from spawner.errors import PublicError

from .args import actions, config_arg


def add_commands(sub: Any) -> None:
    queues = actions(sub, "queues", help="the Volcano queues of the projects (kubernetes backend)")
    sync = queues.add_parser(
        "sync",
        help="create each project's Volcano Queue, its capability the project's quota",
        description="Create or update one Volcano Queue per project's `queue`, with the project's quota "
        "as its capability, through $KUBECONFIG (or the pod's service account).",
    )
    sync.add_argument("--dry-run", action="store_true", help="print the queues (YAML); change nothing")
    config_arg(sync)
    sync.set_defaults(run=cmd_queues_sync)


def cmd_queues_sync(args: argparse.Namespace) -> int:
    from services.jobs.backends.volcano.queues import queues_for

    config = load_config(args.config)
    projects = list(config.projects.values())
    if args.dry_run:
        yaml.safe_dump_all(list(queues_for(projects).values()), sys.stdout, sort_keys=False)
        return 0
    for line in asyncio.run(_sync(projects)):
        print(line)
    return 0


async def _sync(projects: list[Any]) -> list[str]:
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.client.exceptions import ApiException

    from services.jobs.backends.volcano.queues import sync

    configuration = client.Configuration()
    try:
        if os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser("~/.kube/config")):
            await config.load_kube_config(client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException as e:
        raise PublicError(f"no cluster to talk to: {e}", hint="set KUBECONFIG") from None
    async with client.ApiClient(configuration) as api:
        try:
            return await sync(client.CustomObjectsApi(api), projects)
        except ApiException as e:
            hint = "is Volcano installed (its Queue CRD)? may this identity manage queues?"
            raise PublicError(f"the cluster refused: {e.status} {e.reason}", hint=hint) from None
        except OSError as e:
            raise PublicError(f"the cluster cannot be reached: {e}") from None

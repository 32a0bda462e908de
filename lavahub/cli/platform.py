"""`lavahub up` and `lavahub down`: start the platform, stop what it leaves running."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lavahub.config import load_config
from lavahub.credentials import ensure_credentials
from lavahub.db import upgrade as upgrade_database
from lavahub.paths import hub_config_file, proxy_command
from spawner.errors import PublicError

from .args import config_arg
from .db import describe_upgrade


def add_commands(sub: Any) -> None:
    up = sub.add_parser("up", help="start the platform (hub, proxy, workspaces) from the config")
    config_arg(up)
    up.set_defaults(run=cmd_up)

    down = sub.add_parser(
        "down",
        help="stop what `up` leaves running in the background (the local Ray cluster)",
        description="The local Ray cluster outlives `lavahub up` so that running jobs survive a restart "
        "of the hub or the jobs service; this stops it.",
    )
    config_arg(down)
    down.set_defaults(run=cmd_down)


def cmd_up(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    credentials, created = ensure_credentials(config)
    schema = upgrade_database(config.database_url)
    proxy = proxy_command()
    if proxy is None:
        raise PublicError(
            "configurable-http-proxy is not installed",
            hint="run `make install` (it installs it into node_modules/), or set LAVAHUB_PROXY_COMMAND",
        )
    url = f"http://{config.bind if ':' not in config.bind else f'[{config.bind}]'}:{config.port}"
    print(f"lavahub ({config.backend} backend) is starting at {url}")
    print(f"  config:         {config.source or 'built-in embedded defaults'}")
    print(f"  data:           {config.data_dir}")
    print(f"  database:       {describe_upgrade(schema)}")
    print(f"  admin users:    {', '.join(config.admins)}")
    print(f"  users:          {', '.join(u for u in config.users if u not in config.admins)}")
    if created:
        print(f"  admin password: {credentials.admin_password}")
        print(f"  user password:  {credentials.user_password}")
        print(f"  (passwords are shown once; they are kept in {config.credentials_file}, mode 0600)")
    elif config.admin_password and config.user_password:
        print("  passwords:      from the config")
    else:
        print(f"  passwords:      in {config.credentials_file}")
    sys.stdout.flush()

    env = dict(os.environ, LAVAHUB_PROXY_COMMAND=proxy)
    if config.source:
        env["LAVAHUB_CONFIG"] = str(config.source)
    else:
        env.pop("LAVAHUB_CONFIG", None)
    jupyterhub = str(Path(sys.executable).with_name("jupyterhub"))
    if not Path(jupyterhub).exists():
        jupyterhub = "jupyterhub"
    os.chdir(config.data_dir)
    os.execvpe(jupyterhub, [jupyterhub, "-f", str(hub_config_file())], env)
    return 0  # not reached


def cmd_down(args: argparse.Namespace) -> int:
    from services.jobs.backends import load_backend

    print(load_backend(load_config(args.config)).stop_cluster())
    return 0

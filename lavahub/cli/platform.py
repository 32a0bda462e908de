"""`lavahub up` and `lavahub down`: start the platform, stop what it leaves running."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lavahub import local_setup
from lavahub.auth import oidc
from lavahub.auth.store import PasswordStore
from lavahub.config import PlatformConfig, load_config
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
    if config.os_accounts:
        # what the platform makes from here on (databases, cookie secret, logs) is its own alone;
        # what users must reach (their directories, the kernelspec) is given its mode explicitly
        os.umask(0o077)
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    schema = upgrade_database(config.database_url)
    machine = local_setup.prepare(config)
    proxy = proxy_command()
    if proxy is None:
        raise PublicError(
            "configurable-http-proxy is not installed",
            hint="run `make install` (it installs it into node_modules/), or set LAVAHUB_PROXY_COMMAND",
        )
    login = _login(config)  # before anything is printed: a provider that cannot be reached stops here
    url = f"http://{config.bind if ':' not in config.bind else f'[{config.bind}]'}:{config.port}"
    print(f"lavahub ({config.backend} backend) is starting at {url}")
    print(f"  config:         {config.source or 'built-in embedded defaults'}")
    print(f"  data:           {config.data_dir}")
    print(f"  database:       {describe_upgrade(schema)}")
    print(f"  admin users:    {', '.join(config.admins)}")
    print(f"  users:          {', '.join(u for u in config.users if u not in config.admins)}")
    if config.jobs.enabled and config.jobs_off:
        machine.append(f"jobs:           off: {config.jobs_off}")
    for line in [*machine, *login]:
        print(f"  {line}")
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


def _login(config: PlatformConfig) -> list[str]:
    """What `up` says about logging in; passwords made now are in it, once."""
    kind = config.auth.type
    if kind == "local":
        created = PasswordStore(config.database_url).ensure(config.users)
        stored = f"passwords:      {len(config.users)} users, in the database"
        if not created:
            return [stored]
        width = max(len(user) for user in created)
        return [
            *(f"password of {user + ':':<{width + 1}} {password}" for user, password in created.items()),
            "(each new password is shown once: lavahub keeps only its hash; a user changes theirs at "
            "/hub/change-password, `lavahub users reset-password NAME` makes a new one)",
            stored,
        ]
    if kind == "shared":
        credentials, created_now = ensure_credentials(config)
        if created_now:
            return [
                f"admin password: {credentials.admin_password}",
                f"user password:  {credentials.user_password}",
                f"(passwords are shown once; they are kept in {config.credentials_file}, mode 0600)",
            ]
        if config.admin_password and config.user_password:
            return ["passwords:      from the config"]
        return [f"passwords:      in {config.credentials_file}"]
    if kind == "oauth":
        assert config.auth.oauth is not None
        endpoints = oidc.traits(config.auth.oauth)
        return [f"login:          {config.auth.oauth.login_service} at {endpoints['authorize_url']}"]
    return ["login:          the machine's own accounts (PAM)"]


def cmd_down(args: argparse.Namespace) -> int:
    from services.jobs.backends import load_backend

    print(load_backend(load_config(args.config)).stop_cluster())
    return 0

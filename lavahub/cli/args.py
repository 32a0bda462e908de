"""What several command groups' parsers share: `--config`, and a command made of actions."""

from __future__ import annotations

import argparse
from typing import Any


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE",
        help="platform config (default: $LAVAHUB_CONFIG, else the built-in embedded defaults)",
    )  # fmt: skip


def actions(sub: Any, name: str, **about: str) -> Any:
    """A command `name` whose actions (`lavahub NAME ACTION ...`) are added to what this returns."""
    command = sub.add_parser(name, **about)
    return command.add_subparsers(title="actions", metavar="ACTION", required=True)

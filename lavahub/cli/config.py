"""`lavahub config check|schema`: a config file checked as start-up checks it, and its JSON Schema."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lavahub.config import load_config, schema

from .args import actions

ABOUT = (
    "The platform config (lavahub.yaml): check a file the way start-up does, or print "
    "the JSON Schema of every key, with its default and description."
)


def add_commands(sub: Any) -> None:
    config = actions(
        sub, "config", help="check a platform config, or print its JSON Schema", description=ABOUT
    )
    check = config.add_parser("check", help="validate a config file (exit status 2 if it is invalid)")
    check.add_argument("file", help="the config file")
    check.set_defaults(run=cmd_config_check)
    show = config.add_parser("schema", help="print the config's JSON Schema")
    show.add_argument(
        "--helm",
        action="store_true",
        help="the Helm chart's values.schema.json instead (the config's schema under `platform`)",
    )
    show.set_defaults(run=cmd_config_schema)


def cmd_config_check(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    print(
        f"{args.file}: ok (backend {config.backend}, {len(config.projects)} projects, "
        f"{len(config.templates)} templates)"
    )
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    from lavahub.chart import values_schema

    json.dump(values_schema() if args.helm else schema(), sys.stdout, indent=2)
    print()
    return 0

"""`lavahub templates list|export|import`: the template catalogue from the command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from lavahub.config import PlatformConfig, load_config
from lavahub.db import sqlite_file
from spawner.catalogue import export_templates, plan_import
from spawner.errors import PublicError
from spawner.store import TemplateStore
from spawner.templates import Template

from .args import actions, config_arg, print_table


def add_commands(sub: Any) -> None:
    template_actions = actions(
        sub,
        "templates",
        help="list, export and import the image templates",
        description="The template catalogue in lavahub's database (what the spawn form offers). "
        "Export writes YAML in the shape of the config's `templates`; import reads it back, "
        "checks every entry before writing any, and adds a version only where something changed.",
    )
    listing = template_actions.add_parser("list", help="every template, with its version")
    listing.set_defaults(run=cmd_templates_list)
    export = template_actions.add_parser("export", help="print the catalogue as YAML")
    export.set_defaults(run=cmd_templates_export)
    load = template_actions.add_parser("import", help="add or change templates from a YAML file")
    load.add_argument("file", help="the YAML file, or - for standard input")
    load.add_argument("--dry-run", action="store_true", help="check and say what would change; write nothing")
    load.add_argument(
        "--author", default=os.environ.get("USER") or "cli", help="recorded in each new version"
    )
    load.set_defaults(run=cmd_templates_import)
    for action in (listing, export, load):
        config_arg(action)


def template_store_of(config: PlatformConfig) -> TemplateStore:
    """The platform's store, seeded from the config as the hub seeds it at start."""
    store = TemplateStore(config.database_url)
    store.seed(config.templates)
    return store


def cmd_templates_list(args: argparse.Namespace) -> int:
    templates = template_store_of(load_config(args.config)).list()
    rows = [("SLUG", "VERSION", "ENABLED", "PROJECTS", "IMAGE")] + [
        (t.slug, str(t.version), "yes" if t.enabled else "no", ",".join(t.projects) or "all", t.image)
        for t in templates
    ]
    print_table(rows)
    return 0


def cmd_templates_export(args: argparse.Namespace) -> int:
    templates = template_store_of(load_config(args.config)).list()
    yaml.safe_dump(export_templates(templates), sys.stdout, sort_keys=False)
    return 0


def cmd_templates_import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    source = "standard input" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        raw = yaml.safe_load(text)
    except OSError as e:
        raise PublicError(f"cannot read {source}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise PublicError(f"{source} is not valid YAML: {getattr(e, 'problem', None) or e}") from None
    store = template_store_of(config)
    plan = plan_import(raw, store.list(), set(config.projects))
    if plan.errors:
        for error in plan.errors:
            print(f"lavahub: error: {source}: {error}", file=sys.stderr)
        print(f"lavahub: nothing imported ({len(plan.errors)} errors)", file=sys.stderr)
        return 2
    if not args.dry_run:
        store.put_many(plan.writes, author=args.author)
    print(plan.summary(dry_run=args.dry_run))
    return 0


def catalogue(config: PlatformConfig) -> list[Template]:
    """The templates a spawn would see: the store's if the platform has run, else the config's."""
    db_file = sqlite_file(config.database_url)
    if db_file is not None and not db_file.exists():
        return list(config.templates)
    return TemplateStore(config.database_url, create=False).list()

"""What several command groups share: `--config`, a command made of actions, and a table."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
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


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Rows (the first a header) in aligned columns; the last column is left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])

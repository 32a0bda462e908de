"""The `lavahub` command: start the platform, show what a spawn would do, manage templates and jobs.

One module per command group (`platform`: up/down, `users`, `render`, `templates`, `jobs`,
`db`, `config`); each adds its commands to the parser. Every refusal is one line on
stderr and exit status 2; no traceback reaches a user.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from spawner.errors import PublicError

from . import config, db, jobs, platform, render, templates, users

GROUPS = (platform, users, render, templates, jobs, db, config)  # in the order --help lists them


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except PublicError as e:
        print(f"lavahub: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`lavahub config schema | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        if os.environ.get("LAVAHUB_DEBUG"):
            raise
        print(
            f"lavahub: internal error: {type(e).__name__}: {e} (LAVAHUB_DEBUG=1 shows details)",
            file=sys.stderr,
        )
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lavahub", description="lavahub: JupyterHub workspaces for ML teams."
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())

"""Where the `lavahub` console script pointed before the CLI moved to `lavahub.cli`.

Only for environments installed before the move (their script still imports this);
`make install` writes the new script, after which nothing imports this module.
"""

from lavahub.cli import main

__all__ = ["main"]

"""Settings for the whole suite."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def passable(directory: Path) -> Path:
    """`directory`, and every directory above it, opened to pass through (not to list).

    As root the platform gives each user an OS account, and those accounts must pass
    through every directory above their own (lavahub refuses to start otherwise);
    pytest makes its temp dirs 0700."""
    if os.geteuid() == 0:
        for d in (*reversed(directory.parents), directory):
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                d.chmod(stat.S_IMODE(mode) | 0o011)
    return directory

"""Settings for the whole suite."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

# KubeSpawner reads the kubeconfig that kubernetes_asyncio located on its first import, and
# the job backends import it long before the Kubernetes tier is collected: name it first.
from tests import kubernetes as _kubernetes_tier  # noqa: F401


def pytest_configure(config: pytest.Config) -> None:
    """As root, a temp base of this session's own that users' accounts may pass through.

    pytest's default base (/tmp/pytest-of-root) is made 0700 again by every pytest that
    starts, which would shut the accounts of a running platform out of their directories."""
    if os.geteuid() == 0 and config.option.basetemp is None and not hasattr(config, "workerinput"):
        base = Path(tempfile.mkdtemp(prefix="lavahub-tests-"))
        base.chmod(0o711)
        config.option.basetemp = str(base / "t")
        config.stash[_OWN_BASE] = base


def pytest_unconfigure(config: pytest.Config) -> None:
    base = config.stash.get(_OWN_BASE, None)
    if base is not None and not os.environ.get("LAVAHUB_KEEP_TEST_DIRS"):
        shutil.rmtree(base, ignore_errors=True)


_OWN_BASE = pytest.StashKey[Path]()


def passable(directory: Path) -> Path:
    """`directory`, and every directory above it, opened to pass through (not to list).

    As root the platform gives each user an OS account, and those accounts must pass
    through every directory above their own (lavahub refuses to start otherwise);
    pytest makes its temp dirs 0700."""
    for d in (*reversed(directory.parents), directory):
        mode = d.stat().st_mode
        if not mode & stat.S_IXOTH:
            d.chmod(stat.S_IMODE(mode) | 0o011)
    return directory

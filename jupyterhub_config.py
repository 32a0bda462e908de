"""lavahub's one JupyterHub config, for every deployment.

Nothing here is a setting of its own: `lavahub.hubconfig.configure` derives everything
from the platform config (`lavahub.yaml`, path in $LAVAHUB_CONFIG; the embedded
defaults without one). Change the platform config, not this file.
"""

import sys

from lavahub.config import load_config
from lavahub.hubconfig import configure
from spawner.errors import PublicError

try:
    configure(get_config(), load_config())  # noqa: F821 (get_config: provided by JupyterHub)
except PublicError as e:
    print(f"lavahub: error: {e}", file=sys.stderr)
    raise SystemExit(2) from None

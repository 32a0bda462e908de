"""lavahub's one JupyterHub config, for every deployment.

Nothing here is a setting of its own: `lavahub.hubconfig.configure` derives everything
from the platform config (`lavahub.yaml`, path in $LAVAHUB_CONFIG; the embedded
defaults without one). Change the platform config, not this file.
"""

import sys
from typing import TYPE_CHECKING

from lavahub.config import load_config
from lavahub.hubconfig import configure
from spawner.errors import PublicError

if TYPE_CHECKING:
    from traitlets.config import Config

    def get_config() -> Config: ...  # JupyterHub provides it to the config file it runs


try:
    configure(get_config(), load_config())
except PublicError as e:
    print(f"lavahub: error: {e}", file=sys.stderr)
    raise SystemExit(2) from None

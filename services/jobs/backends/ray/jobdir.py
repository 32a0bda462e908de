"""The job directory on the personal volume: what every worker of a Ray job reads and writes.

`<personal>/.lavahub/jobs/<id>/`: code.py and exports.pkl (the job execution
contract's files), spec.json (the launcher's input), logs/worker-N.log,
state.json (from the launcher) and result.pkl (from rank 0). The cell's code is
only ever a file here, never part of a command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lavahub_jupyter.runtime.contract import CODE_FILE, EXPORTS_FILE

from spawner.volumes import PERSONAL, by_kind

from ...models import JobSpec

SPEC_FILE = "spec.json"
STATE_FILE = "state.json"
MAX_STATE_BYTES = 64 * 2**10  # the launcher writes a few hundred bytes
# what the launcher may report in state.json, and the type of each (anything else is garbage)
STATE_SHAPE: dict[str, type | tuple[type, ...]] = {
    "placed": bool,
    "exit_code": int,
    "reason": str,
    "failed_worker": int,
    "nodes": list,
}


def volume_of(job_dir: str) -> Path:
    """The volume a job directory (`<volume>/.lavahub/jobs/<id>`) is on: its user cannot replace
    that directory, only what is below it, so files of the job are opened from there on."""
    parents = Path(job_dir).parents
    return parents[min(2, len(parents) - 1)]


def launcher_spec(spec: JobSpec) -> dict[str, Any]:
    """What the launcher needs to place the gang and start each worker."""
    r = spec.resources
    return {
        "id": spec.id,
        "user": spec.user,
        "home": by_kind(spec.volumes)[PERSONAL].mount_path if spec.volumes else spec.cwd,
        "framework": spec.framework,
        "workers": spec.workers,
        "cpus": r.cpus,
        "memory": r.memory,
        "gpus": r.gpus,
        "env": spec.env,
        "cwd": spec.cwd,
        "result": spec.result,
    }


def write_job_dir(spec: JobSpec) -> Path:
    """Create the job directory with the code, the launcher's spec and the exported variables."""
    job_dir = Path(spec.job_dir)
    (job_dir / "logs").mkdir(parents=True, exist_ok=True)
    (job_dir / CODE_FILE).write_text(spec.code)
    if spec.exports is not None:
        (job_dir / EXPORTS_FILE).write_bytes(spec.exports)
    (job_dir / SPEC_FILE).write_text(json.dumps(launcher_spec(spec)))
    return job_dir

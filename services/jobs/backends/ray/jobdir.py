"""The job directory on the personal volume: what every worker of a Ray job reads and writes.

`<personal>/.lavahub/jobs/<id>/`: code.py and exports.pkl (the job execution
contract's files), spec.json (what the job was asked to be, for its user to read),
logs/launcher.log (placement), logs/worker-N.log and result.pkl (from rank 0). The cell's code is
only ever a file here, never part of a command line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lavahub_jupyter.runtime.contract import CODE_FILE, EXPORTS_FILE

from spawner.accounts import Account
from spawner.volumes import PERSONAL, by_kind

from ...models import JobSpec
from ..untrusted import Owner, make_dirs, write_new

SPEC_FILE = "spec.json"


def volume_of(job_dir: str) -> Path:
    """The volume a job directory (`<volume>/.lavahub/jobs/<id>`) is on: its user cannot replace
    that directory, only what is below it, so files of the job are opened from there on."""
    parents = Path(job_dir).parents
    return parents[min(2, len(parents) - 1)]


def launcher_spec(spec: JobSpec, account: Account | None = None) -> dict[str, Any]:
    """What the dispatcher needs to place the gang and start each worker (as `account`, if given)."""
    r = spec.resources
    return {
        "account": account.to_dict() if account else None,
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


def write_job_dir(spec: JobSpec, owner: Owner | None = None) -> Path:
    """Create the job directory with the code, the launcher's spec and the exported variables.

    It is on the user's volume, so nothing on the way is followed if it is a link
    (`.lavahub` pointing elsewhere, a `code.py` planted as a link to another file):
    `Untrusted` says what was found, and nothing is written outside the volume.
    With `owner` (the user's OS account) it is all theirs: their workers write there.
    spec.json is for the user to read; the dispatcher takes its spec from the service.
    """
    job_dir = Path(spec.job_dir)
    volume = volume_of(spec.job_dir)
    volume.mkdir(parents=True, exist_ok=True)  # the platform's own path, as a workspace makes it
    directory = make_dirs(job_dir, below=volume, owner=owner)
    try:
        os.close(make_dirs(job_dir / "logs", below=volume, owner=owner))
        write_new(directory, CODE_FILE, spec.code.encode(), owner=owner)
        if spec.exports is not None:
            write_new(directory, EXPORTS_FILE, spec.exports, owner=owner)
        write_new(directory, SPEC_FILE, json.dumps(launcher_spec(spec)).encode(), owner=owner)
    finally:
        os.close(directory)
    return job_dir

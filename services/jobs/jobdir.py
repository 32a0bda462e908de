"""The job directory on the personal volume: what every worker of a job reads and writes.

`<personal>/.lavahub/jobs/<id>/`: code.py, spec.json, exports.pkl, logs/worker-N.log,
state.json (from the launcher) and result.pkl (from rank 0). The cell's code is
only ever a file here, never part of a command line.
"""

from __future__ import annotations

import json
from pathlib import Path

from .models import JobSpec


def write_job_files(spec: JobSpec) -> Path:
    """Create the job directory with the code, the launcher's spec and the exported variables."""
    job_dir = Path(spec.job_dir)
    (job_dir / "logs").mkdir(parents=True, exist_ok=True)
    (job_dir / "code.py").write_text(spec.code)
    if spec.exports is not None:
        (job_dir / "exports.pkl").write_bytes(spec.exports)
    r = spec.resources
    (job_dir / "spec.json").write_text(
        json.dumps(
            {
                "id": spec.id,
                "framework": spec.framework,
                "workers": spec.workers,
                "cpus": r.cpus,
                "memory": r.memory,
                "gpus": r.gpus,
                "env": spec.env,
                "cwd": spec.cwd,
                "result": spec.result,
            }
        )
    )
    return job_dir

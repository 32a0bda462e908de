"""One pod of a Volcano job: the job execution contract from what Volcano gives the pod, then the cell.

Run as `python -P -m lavahub_jupyter.runtime.pod`. A task's pods share one template,
so the renderer cannot give each its RANK: this entry computes it from Volcano's
env plugin (`VC_TASK_INDEX`, plus the task's `LAVAHUB_RANK_OFFSET`) unless a plugin
set it (pytorch sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT itself; mpirun
sets OMPI_COMM_WORLD_RANK). The cell then runs as on every backend (`bootstrap`),
and rank 0 prints its result for the service, which sees no volume of the user's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from . import bootstrap
from .contract import RESULT_FILE, contract_env, result_lines


def worker_contract(environ: Mapping[str, str]) -> dict[str, str]:
    """This pod's contract variables, from the renderer's LAVAHUB_* and Volcano's own."""
    if "RANK" in environ:  # the pytorch plugin
        rank = int(environ["RANK"])
    elif "OMPI_COMM_WORLD_RANK" in environ:  # mpirun on the mpi launcher's workers
        rank = int(environ["OMPI_COMM_WORLD_RANK"])
    else:
        rank = int(environ.get("VC_TASK_INDEX", "0")) + int(environ.get("LAVAHUB_RANK_OFFSET", "0"))
    keep = {k: v for k, v in environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    return contract_env(
        job_id=environ["LAVAHUB_JOB_ID"],
        job_dir=environ["LAVAHUB_JOB_DIR"],
        rank=rank,
        world_size=int(environ.get("WORLD_SIZE") or environ["LAVAHUB_WORLD_SIZE"]),
        local_rank=0,
        master_addr=environ.get("MASTER_ADDR") or environ["LAVAHUB_MASTER_ADDR"],
        master_port=int(environ.get("MASTER_PORT") or environ["LAVAHUB_MASTER_PORT"]),
        env=keep,
        result=environ.get("LAVAHUB_RESULT"),
    )


def main() -> int:
    os.environ.update(worker_contract(os.environ))
    os.environ["LOCAL_WORLD_SIZE"] = "1"  # one worker per pod
    job_dir = Path(os.environ["LAVAHUB_JOB_DIR"])
    job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # on the personal volume: the owner's
    code = bootstrap.main(job_dir, files=Path(os.environ["LAVAHUB_JOB_FILES"]))
    token = os.environ.get("LAVAHUB_RESULT_TOKEN")
    if code == 0 and token and os.environ.get("RANK") == "0" and os.environ.get("LAVAHUB_RESULT"):
        sys.stdout.flush()
        sys.stderr.flush()
        data = (job_dir / RESULT_FILE).read_bytes()
        sys.stdout.write("\n".join(result_lines(data, token)) + "\n")  # the backend finds it mid-line too
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())

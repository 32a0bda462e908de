"""One worker's process: load exported variables, run the cell, send rank 0's result back.

Run as `python -P -m lavahub_jupyter.runtime.bootstrap <job dir>`; the cell runs as
`__main__`, so its output, exceptions and exit code are those of a normal Python script.
`-P` keeps the working directory (perhaps a project directory others can write) off
`sys.path` while lavahub's own modules load; the cell then finds modules beside it, as
in a notebook.
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import cloudpickle

from .contract import CODE_FILE, EXPORTS_B64_FILE, EXPORTS_FILE, RESULT_FILE


def main(job_dir: Path, files: Path | None = None) -> int:
    """Run the cell of `files` (default: the job dir); rank 0's result goes to the job dir."""
    files = files or job_dir
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": str(files / CODE_FILE)}
    exports, exports_b64 = files / EXPORTS_FILE, files / EXPORTS_B64_FILE
    if exports.exists():
        namespace.update(cloudpickle.loads(exports.read_bytes()))
    elif exports_b64.exists():
        namespace.update(cloudpickle.loads(base64.b64decode(exports_b64.read_bytes())))
    code = (files / CODE_FILE).read_text()
    sys.argv = [str(files / CODE_FILE)]
    sys.path.insert(0, os.getcwd())  # now, for the cell only: as a notebook's kernel has it
    try:
        exec(compile(code, str(files / CODE_FILE), "exec"), namespace)  # the user's own cell, in their job
    finally:
        _leave_process_group()

    result = os.environ.get("LAVAHUB_RESULT")
    if result and os.environ.get("RANK", "0") == "0":
        if result not in namespace:
            print(
                f"lavahub: the cell did not define {result!r}, so there is no result to return",
                file=sys.stderr,
            )
            return 1
        partial = job_dir / (RESULT_FILE + ".tmp")
        partial.write_bytes(cloudpickle.dumps(namespace[result]))
        partial.replace(job_dir / RESULT_FILE)
    return 0


def _leave_process_group() -> None:
    """Leave a torch.distributed group the cell joined: exiting inside one makes gloo abort
    ("terminate called without an active exception") although the cell succeeded."""
    distributed = sys.modules.get("torch.distributed")
    try:
        if distributed is not None and distributed.is_initialized():
            distributed.destroy_process_group()
    except Exception:  # the cell's outcome stands; this is only tidying up
        pass


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

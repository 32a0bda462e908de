"""The Ray job entrypoint: reserve every worker at once, then run the cell on each.

Run as `python -m services.jobs.backends.ray.launcher <job dir>` by Ray's job supervisor.
It reports to the service through `<job dir>/state.json` (placed, exit code,
reason) and never prints the user's output itself: each worker writes its own
`logs/worker-N.log`, which the service follows.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import ray
from lavahub_jupyter.runtime.contract import base_env, contract_env
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from services.jobs.backends.ray.jobdir import SPEC_FILE, STATE_FILE

PR_SET_PDEATHSIG = 1
WORKER = [sys.executable, "-P", "-m", "lavahub_jupyter.runtime.bootstrap"]


def write_state(job_dir: Path, **state: Any) -> None:
    path = job_dir / STATE_FILE
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(state)
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(current))
    partial.replace(path)  # atomic: the service never reads half a file


def log(job_dir: Path, message: str) -> None:
    with (job_dir / "logs" / "launcher.log").open("a") as f:
        f.write(message + "\n")


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the Ray worker running us dies (cancel, node loss)."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@ray.remote(num_cpus=0)
def node_address() -> tuple[str, int]:
    """This node's address and a free port on it (used for rank 0's MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port  # type: ignore[no-untyped-call]  # ray leaves it unannotated


@ray.remote(max_retries=0)
def run_worker(job_dir: str, rank: int, env: dict[str, str], cwd: str) -> int:
    """One worker: the cell as a normal process, output into logs/worker-N.log."""
    gpu_ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    environment = {**env, "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids)}
    with open(Path(job_dir) / "logs" / f"worker-{rank}.log", "ab", buffering=0) as out:
        process = subprocess.Popen(
            [*WORKER, job_dir],
            cwd=cwd,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        return process.wait()


def worker_env(
    job_dir: Path, spec: dict[str, Any], rank: int, world: int, local_rank: int, master: tuple[str, int]
) -> dict[str, str]:
    """One worker's whole environment: the machine's basics, then the job execution contract's."""
    return base_env(os.environ, home=spec["home"], user=spec["user"]) | contract_env(
        job_id=spec["id"],
        job_dir=str(job_dir),
        rank=rank,
        world_size=world,
        local_rank=local_rank,
        master_addr=master[0],
        master_port=master[1],
        env=spec["env"],
        result=spec.get("result"),
    )


def run_gang(job_dir: Path, spec: dict[str, Any]) -> int:
    workers = spec["workers"]
    bundle = {"CPU": spec["cpus"]}
    if spec["gpus"]:
        bundle["GPU"] = spec["gpus"]
    if spec["memory"]:
        bundle["memory"] = spec["memory"]
    log(job_dir, f"waiting for all {workers} workers to be placed together")
    group = placement_group([dict(bundle) for _ in range(workers)], strategy="PACK")
    ray.get(group.ready())

    def strategy(i: int) -> PlacementGroupSchedulingStrategy:
        return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)

    addresses = ray.get(
        [node_address.options(scheduling_strategy=strategy(i)).remote() for i in range(workers)]
    )
    master = addresses[0]
    seen: Counter[str] = Counter()
    local_ranks = []
    for ip, _ in addresses:
        local_ranks.append(seen[ip])
        seen[ip] += 1
    write_state(job_dir, placed=True, nodes=[ip for ip, _ in addresses])
    log(job_dir, f"all {workers} workers placed; rank 0 at {master[0]}:{master[1]}")

    refs = {
        run_worker.options(
            scheduling_strategy=strategy(rank),
            num_cpus=spec["cpus"],
            num_gpus=spec["gpus"],
            memory=spec["memory"] or None,
        ).remote(
            str(job_dir),
            rank,
            worker_env(job_dir, spec, rank, workers, local_ranks[rank], master),
            spec["cwd"],
        ): rank
        for rank in range(workers)
    }
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            rank = refs[done[0]]
            code: int = ray.get(done[0])
            if code != 0:
                # one worker failed: the gang fails; stop the others
                for ref in pending:
                    ray.cancel(ref, force=True)
                write_state(
                    job_dir,
                    exit_code=code,
                    failed_worker=rank,
                    reason=f"worker {rank} exited with code {code}",
                )
                return code
        write_state(job_dir, exit_code=0)
        return 0
    finally:
        remove_placement_group(group)


def run_ray_driver(job_dir: Path, spec: dict[str, Any]) -> int:
    """framework=ray: one driver process that connects to this cluster and fans out itself."""
    write_state(job_dir, placed=True)
    env = worker_env(job_dir, spec, 0, 1, 0, ("127.0.0.1", 0))
    # the driver joins this cluster: it needs its address and token (a cluster of the job's own
    # inside its gang is the Volcano backend's way, and this backend's next step)
    env["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address
    env.update({key: os.environ[key] for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN") if key in os.environ})
    with open(job_dir / "logs" / "worker-0.log", "ab", buffering=0) as out:
        code = subprocess.call(
            [*WORKER, str(job_dir)],
            cwd=spec["cwd"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    write_state(
        job_dir,
        exit_code=code,
        **({"failed_worker": 0, "reason": f"worker 0 exited with code {code}"} if code else {}),
    )
    return code


def main(argv: list[str]) -> int:
    job_dir = Path(argv[1])
    spec = json.loads((job_dir / SPEC_FILE).read_text())
    (job_dir / "logs").mkdir(exist_ok=True)

    def cancelled(signum: int, frame: Any) -> None:
        write_state(job_dir, reason="cancelled")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, cancelled)
    started = time.monotonic()
    ray.init(logging_level=logging.WARNING, log_to_driver=False)
    log(job_dir, f"connected to Ray in {time.monotonic() - started:.1f}s")
    if spec["framework"] == "ray":
        return run_ray_driver(job_dir, spec)
    return run_gang(job_dir, spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The Ray job entrypoint: reserve every worker at once, then run the cell on each.

Run as `python -m services.jobs.backends.ray.launcher <job dir>` by Ray's job supervisor,
with its spec in $LAVAHUB_JOB_SPEC (from the service: the job directory is its
user's to change, so nothing there decides what the launcher does). It reports to
the service through `<job dir>/state.json` (placed, exit code, reason) and never
prints the user's output itself: each worker writes its own `logs/worker-N.log`,
which the service follows.

The launcher is platform code with the cluster's token; the workers are the user's:
each runs as the job's owner (their OS account, when users have them) with a clean
environment. Everything the launcher writes into the job directory goes through
descriptors opened without following links (`untrusted`), since it runs as root.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from lavahub_jupyter.runtime.contract import base_env, contract_env
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from services.jobs.backends.ray import private
from services.jobs.backends.ray.jobdir import SPEC_ENV, STATE_FILE, volume_of
from services.jobs.backends.untrusted import append_to, make_dirs, replace
from spawner import cgroups
from spawner.gpus import inventory

PR_SET_PDEATHSIG = 1
WORKER = [sys.executable, "-P", "-m", "lavahub_jupyter.runtime.bootstrap"]
USER_UMASK = 0o007  # as a workspace's: files in a project directory stay writable by its members


class JobDir:
    """The job directory as the launcher writes it: state.json and logs/launcher.log."""

    def __init__(self, path: Path, owner: tuple[int, int] | None):
        self.path, self.owner = path, owner
        self.state: dict[str, Any] = {}

    def _dir(self, *below: str) -> int:
        return make_dirs(self.path.joinpath(*below), below=volume_of(str(self.path)), owner=self.owner)

    def write_state(self, **state: Any) -> None:
        self.state.update(state)
        fd = self._dir()
        try:
            replace(fd, STATE_FILE, json.dumps(self.state).encode())  # atomic: never read half
        finally:
            os.close(fd)

    def log(self, message: str) -> None:
        fd = open_log(self.path, "launcher.log", self.owner)
        try:
            os.write(fd, (message + "\n").encode())
        finally:
            os.close(fd)


def open_log(job_dir: Path, name: str, owner: tuple[int, int] | None) -> int:
    """A descriptor appending to `<job dir>/logs/<name>`, reached without following links."""
    logs = make_dirs(job_dir / "logs", below=volume_of(str(job_dir)), owner=owner)
    try:
        return append_to(logs, name, owner=owner)
    finally:
        os.close(logs)


def as_owner(account: dict[str, Any] | None, group: cgroups.Cgroup | None) -> Callable[[], None]:
    """A `preexec_fn`: join the worker's cgroup (as root: its files are root's), become the job's
    owner (when there is an account), then get SIGKILL when the Ray worker running us dies
    (cancel, node loss): a change of user clears that setting, so it comes last."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)  # loaded here: the forked child only calls it

    def preexec() -> None:
        if group is not None:
            group.join_self()
        if account is not None:
            os.setgroups(account["groups"])
            os.setgid(account["gid"])
            os.setuid(account["uid"])
            os.umask(USER_UMASK)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


def worker_cgroup(job_id: str, rank: int, spec: dict[str, Any], gpu_ids: list[str]) -> cgroups.Cgroup | None:
    """The worker's cgroup, with its bundle's CPUs, memory and GPUs, where the machine offers one."""
    controllers = cgroups.this_machine()
    if not controllers.usable:
        return None
    limits = cgroups.Limits(
        cpus=spec["cpus"] or None,
        memory_bytes=spec["memory"] or None,
        gpus_allowed=tuple(int(g) for g in gpu_ids),
        all_gpus=tuple(g.index for g in inventory()),
    )
    try:
        return cgroups.create(controllers, f"job-{job_id}-worker-{rank}", limits)
    except cgroups.CgroupError as e:
        logging.getLogger(__name__).warning("worker %d of job %s has no limits: %s", rank, job_id, e)
        return None


def owner_of(account: dict[str, Any] | None) -> tuple[int, int] | None:
    return (account["uid"], account["gid"]) if account else None


@ray.remote(num_cpus=0)
def node_address() -> tuple[str, int]:
    """This node's address and a free port on it (used for rank 0's MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port  # type: ignore[no-untyped-call]  # ray leaves it unannotated


@ray.remote(max_retries=0)
def run_worker(job_dir: str, rank: int, env: dict[str, str], spec: dict[str, Any]) -> int:
    """One worker: the cell as a normal process of the job's owner, output into logs/worker-N.log.

    framework=ray: the worker first starts a Ray cluster of the job's own, inside this
    worker's bundle and as its owner, and the cell connects to that one."""
    gpu_ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    environment = {**env, "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids)}
    account = spec["account"]
    out = open_log(Path(job_dir), f"worker-{rank}.log", owner_of(account))
    group = worker_cgroup(spec["id"], rank, spec, gpu_ids)
    preexec = as_owner(account, group)
    head = None
    try:
        if spec["framework"] == "ray":
            head = private.start_head(
                job_id=spec["id"], cpus=spec["cpus"], gpus=len(gpu_ids), env=environment,
                log=out, preexec=preexec, owner=owner_of(account),
            )  # fmt: skip
            environment["RAY_ADDRESS"] = head.address
        process = subprocess.Popen(
            [*WORKER, job_dir],
            cwd=spec["cwd"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec,
        )
        return process.wait()
    except private.HeadFailed as e:
        os.write(out, f"[lavahub] {e}\n".encode())
        return 1
    finally:
        if head is not None:
            head.stop()
        os.close(out)
        if group is not None:
            group.remove()  # a group still busy (a worker's orphan) is left, never killed


def worker_env(
    job_dir: Path, spec: dict[str, Any], rank: int, world: int, local_rank: int, master: tuple[str, int]
) -> dict[str, str]:
    """One worker's whole environment: the machine's basics, then the job execution contract's."""
    user = spec["account"]["name"] if spec["account"] else spec["user"]
    return base_env(os.environ, home=spec["home"], user=user) | contract_env(
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


def run_gang(job: JobDir, spec: dict[str, Any]) -> int:
    """Place every worker's bundle at once (a placement group), then start them all."""
    workers = spec["workers"]
    bundle = {"CPU": spec["cpus"]}
    if spec["gpus"]:
        bundle["GPU"] = spec["gpus"]
    if spec["memory"]:
        bundle["memory"] = spec["memory"]
    job.log(f"waiting for all {workers} workers to be placed together")
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
    job.write_state(placed=True, nodes=[ip for ip, _ in addresses])
    job.log(f"all {workers} workers placed; rank 0 at {master[0]}:{master[1]}")

    refs = {
        run_worker.options(
            scheduling_strategy=strategy(rank),
            num_cpus=spec["cpus"],
            num_gpus=spec["gpus"],
            memory=spec["memory"] or None,
        ).remote(
            str(job.path),
            rank,
            worker_env(job.path, spec, rank, workers, local_ranks[rank], master),
            spec,
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
                job.write_state(
                    exit_code=code, failed_worker=rank, reason=f"worker {rank} exited with code {code}"
                )
                return code
        job.write_state(exit_code=0)
        return 0
    finally:
        remove_placement_group(group)


def main(argv: list[str]) -> int:
    spec = json.loads(os.environ[SPEC_ENV])
    job = JobDir(Path(argv[1]), owner_of(spec["account"]))

    def cancelled(signum: int, frame: Any) -> None:
        job.write_state(reason="cancelled")
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, cancelled)
    started = time.monotonic()
    ray.init(logging_level=logging.WARNING, log_to_driver=False)
    job.log(f"connected to Ray in {time.monotonic() - started:.1f}s")
    return run_gang(job, spec)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

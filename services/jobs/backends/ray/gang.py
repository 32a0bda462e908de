"""One worker of a job's gang, as a Ray task: the cell as a fresh process of the job's owner.

The dispatcher (`dispatcher.py`) places the gang and starts one `run_worker` task in
each bundle. The Ray worker process running the task is the platform's and is reused
from job to job; it never runs the user's code itself. It starts the cell as a new
process (`lavahub_jupyter.runtime.bootstrap`) that joins the worker's cgroup, drops to
the job's owner (their OS account, when users have them) with a clean environment,
and writes its output to `logs/worker-N.log`, which the service follows. When the
cell ends (or the task is cancelled), every process it left behind is killed: the Ray
worker is their subreaper, so a daemonized child cannot outlive its job.
Everything the platform writes into the job directory goes through descriptors
opened without following links (`untrusted`), since it runs as root.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import ray
from lavahub_jupyter.runtime.contract import base_env, contract_env

from services.jobs.backends.ray import private
from services.jobs.backends.ray.jobdir import volume_of
from services.jobs.backends.ray.processes import stop_all
from services.jobs.backends.untrusted import append_to, make_dirs
from spawner import cgroups
from spawner.gpus import inventory

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
WORKER = [sys.executable, "-P", "-m", "lavahub_jupyter.runtime.bootstrap"]
USER_UMASK = 0o007  # as a workspace's: files in a project directory stay writable by its members
STOP_POLL = 0.2  # seconds between two questions to the dispatcher whether the job still runs
LEFTOVER_GRACE = 2.0  # seconds the processes a cell left behind get between SIGTERM and SIGKILL


def launcher_log(job_dir: Path, owner: tuple[int, int] | None, message: str) -> None:
    """A line of the platform's own in `logs/launcher.log` (shown as `[launcher] ...`)."""
    fd = open_log(job_dir, "launcher.log", owner)
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


def private_tmp(job_id: str, rank: int, owner: tuple[int, int] | None) -> Path:
    """The worker's own TMPDIR (0700, its owner's), removed with the job: what a cell leaves in
    its temp files is gone before the next job, whoever's, runs on this Ray worker."""
    path = Path(tempfile.mkdtemp(prefix=f"lavahub-job-{job_id}-{rank}-"))
    if owner is not None:
        os.chown(path, *owner)
    return path


def end_leftovers() -> int:
    """Stop every process the cell left behind (this Ray worker is their subreaper, so even a
    daemonized one is our descendant): SIGTERM, then SIGKILL after a grace. Returns how many."""
    left = psutil.Process().children(recursive=True)
    stop_all(left, LEFTOVER_GRACE)
    return len(left)


def until_unwanted(process: subprocess.Popen[bytes], job_id: str) -> int:
    """The cell's exit code; or, once the dispatcher no longer wants the job (cancelled, or its
    gang failed), -SIGTERM after the cell was stopped (by the caller's `end_leftovers`).

    The worker asks the dispatcher every STOP_POLL s rather than being cancelled through Ray:
    Ray 2.60's owner aborts ("Tried to complete task that was not pending") when a task is
    cancelled as it completes, which took the dispatcher and every job with it."""
    from .dispatcher import NAME, NAMESPACE

    dispatcher: Any = None
    while True:
        try:
            return process.wait(timeout=STOP_POLL)
        except subprocess.TimeoutExpired:
            pass
        try:
            dispatcher = dispatcher or ray.get_actor(NAME, namespace=NAMESPACE)
            wanted = bool(ray.get(dispatcher.wanted.remote(job_id), timeout=30))
        except Exception:  # the dispatcher is gone: so is the job, and nobody would read its end
            wanted = False
        if not wanted:
            return -signal.SIGTERM


@ray.remote(num_cpus=0)
def node_address() -> tuple[str, int]:
    """This node's address and a free port on it (used for rank 0's MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port  # type: ignore[no-untyped-call]  # ray leaves it unannotated


@ray.remote(max_retries=0)
def run_worker(job_dir: str, rank: int, env: dict[str, str], spec: dict[str, Any]) -> int:
    """One worker: the cell as a new process of the job's owner, output into logs/worker-N.log.

    Returns its exit code (negative: the signal that ended it). framework=ray: the worker
    first starts a Ray cluster of the job's own, inside this worker's bundle and as its
    owner, and the cell connects to that one. Cancelled (the dispatcher's `ray.cancel`),
    the cell and everything it started are stopped before this returns."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    gpu_ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    account = spec["account"]
    owner = owner_of(account)
    tmp = private_tmp(spec["id"], rank, owner)
    environment = {**env, "CUDA_VISIBLE_DEVICES": ",".join(gpu_ids), "TMPDIR": str(tmp)}
    out = open_log(Path(job_dir), f"worker-{rank}.log", owner)
    group = worker_cgroup(spec["id"], rank, spec, gpu_ids)
    preexec = as_owner(account, group)
    head = None
    try:
        if spec["framework"] == "ray":
            head = private.start_head(
                job_id=spec["id"], cpus=spec["cpus"], gpus=len(gpu_ids), env=environment,
                log=out, preexec=preexec, owner=owner,
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
        return until_unwanted(process, spec["id"])
    except private.HeadFailed as e:
        os.write(out, f"[lavahub] {e}\n".encode())
        return 1
    finally:
        if head is not None:
            head.stop()
        end_leftovers()
        os.close(out)
        shutil.rmtree(tmp, ignore_errors=True)
        if group is not None:
            group.remove()


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

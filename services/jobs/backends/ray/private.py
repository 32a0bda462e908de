"""A Ray cluster of a job's own, for `framework: ray` jobs: the cell's `ray.init()` joins it.

The platform's cluster needs its token to join, and a job that held it could list,
stop or submit anyone's jobs outside every quota. So a ray job's worker starts a
head of its own, as the job's owner, offering only that worker's bundle (its
CPUs and GPUs), on loopback, and stops it when the cell ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

READY = b"Ray runtime started"  # what `ray start` prints once the head takes drivers
START_TIMEOUT = 120.0  # seconds: a head starts in 3-10 s here, far longer on a busy 2-core machine
OWN_PORTS = (
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "node-manager-port",
    "object-manager-port",
    "ray-client-server-port",
)


class HeadFailed(Exception):
    """The job's own Ray cluster did not start; the message says why, for the job's log."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Head:
    process: subprocess.Popen[bytes]
    address: str
    temp_dir: str

    def stop(self) -> None:
        """Stop every process of this head (it runs in a session of its own), then its files."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(
    *,
    job_id: str,
    cpus: float,
    gpus: int,
    env: dict[str, str],
    log: int,
    preexec: Callable[[], None],
    owner: tuple[int, int] | None,
) -> Head:
    """Start the head (`ray start --head --block`) and wait until it takes drivers.

    `env` is the worker's own (no platform token: this cluster has none), `log` the
    worker's log descriptor, `preexec` what puts the process in the worker's cgroup and makes
    it the job's owner.
    """
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    # short: Ray's socket paths must fit in 107 bytes
    temp_dir = tempfile.mkdtemp(prefix=f"lh-{job_id[:8]}-", dir="/tmp")
    if owner is not None:
        os.chown(temp_dir, *owner)
    port = _free_port()
    command = [
        ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
        f"--num-cpus={max(1, round(cpus))}", f"--num-gpus={gpus}", f"--temp-dir={temp_dir}",
        "--include-dashboard=false", "--disable-usage-stats", "--object-store-memory=78643200",
        *(f"--{option}={_free_port()}" for option in OWN_PORTS),
    ]  # fmt: skip
    os.write(log, b"[lavahub] starting this job's own Ray cluster\n")
    process = subprocess.Popen(
        command,
        env={**env, "RAY_USAGE_STATS_ENABLED": "0"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=preexec,
    )
    head = Head(process, f"127.0.0.1:{port}", temp_dir)
    started = threading.Event()
    threading.Thread(target=_forward, args=(process, log, started), daemon=True).start()
    if not started.wait(START_TIMEOUT):
        head.stop()
        raise HeadFailed(f"this job's own Ray cluster did not start within {START_TIMEOUT:g} s")
    if process.poll() is not None:
        head.stop()
        raise HeadFailed(f"this job's own Ray cluster exited with code {process.returncode}")
    os.write(log, f"[lavahub] this job's Ray cluster is up at {head.address}\n".encode())
    return head


def _forward(process: subprocess.Popen[bytes], log: int, started: threading.Event) -> None:
    """Copy the head's output into the worker's log; say when it is ready (or gone)."""
    assert process.stdout is not None
    for line in process.stdout:
        os.write(log, line)
        if READY in line:
            started.set()
    started.set()  # it exited: the waiter sees that

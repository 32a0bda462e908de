"""Jobs on Ray: a local head on loopback (started or reused), or any Ray cluster by address.

Each job is a Ray job whose entrypoint is lavahub's launcher: it reserves every
worker at once with a placement group (all or nothing, like Volcano's gang),
then runs the cell in N worker processes under the job execution contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests
from traitlets import Integer, Unicode

from spawner.resources import Resources

from ..models import Job, Observation
from ..states import from_ray
from ..tail import LogTail
from .base import Backend, BackendUnavailable, ClusterUsage

SUBMISSION_PREFIX = "lavahub-"
START_ATTEMPTS = 2  # a raylet that misses its registration on a busy machine gets one more go
OWN_PORTS = (
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "ray-client-server-port",
    "metrics-export-port",
    "runtime-env-agent-port",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RayBackend(Backend):
    address = Unicode(
        "",
        config=True,
        help="Dashboard address of an existing Ray cluster (http://host:8265). Empty: run a local head.",
    )
    state_dir = Unicode(config=True, help="Where the local head keeps its token, logs and session files.")
    port = Integer(6380, config=True, help="GCS port of the local head.")
    dashboard_port = Integer(
        8265, config=True, help="Dashboard / Jobs API port of the local head (loopback)."
    )
    num_cpus = Integer(0, config=True, help="CPUs the local head offers; 0: all of this machine's.")
    num_gpus = Integer(0, config=True, help="GPUs the local head offers (from the NVML inventory).")
    object_store_memory = Integer(
        256 * 2**20, config=True, help="Object store size of the local head, bytes."
    )
    start_timeout = Integer(180, config=True, help="Seconds to wait for a local head's dashboard to answer.")

    _ready = False
    _token: str | None = None
    _job_client: Any = None
    _waiting_for: str | None = "the Ray cluster to start"
    _start_task: asyncio.Task[None] | None = None

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._tails: dict[str, LogTail] = {}  # one per job being followed: offsets stay in memory

    # -- connection --------------------------------------------------------------------
    @property
    def dashboard_url(self) -> str:
        return self.address.rstrip("/") if self.address else f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def token(self) -> str | None:
        """The cluster's auth token, read (or, for a local head, created) once."""
        if self._token is None:
            self._token = self._read_token()
        return self._token or None

    def _read_token(self) -> str:
        if self.address:
            return os.environ.get("RAY_AUTH_TOKEN", "")
        path = Path(self.state_dir) / "token"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
        return path.read_text().strip()

    def ray_env(self) -> dict[str, str]:
        """Environment for anything that talks to the cluster: token auth on."""
        env = dict(os.environ)
        token = self.token
        if token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        return env

    def _get(self, path: str, timeout: float = 5) -> requests.Response:
        token = self.token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(f"{self.dashboard_url}{path}", headers=headers, timeout=timeout)

    def _alive(self) -> bool:
        try:
            return self._get("/api/version", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    async def setup(self) -> None:
        self._start_task = asyncio.ensure_future(self._connect())

    async def _connect(self) -> None:
        if await asyncio.to_thread(self._alive):
            self.log.info("Using the Ray cluster at %s", self.dashboard_url)
        elif self.address:
            self._waiting_for = f"the Ray cluster at {self.address} to answer"
            while not await asyncio.to_thread(self._alive):
                await asyncio.sleep(2)
        else:
            await self._start_local_head()
        await asyncio.to_thread(self._client)  # its version check now, not in the first submission
        self._ready, self._waiting_for = True, None

    async def _start_local_head(self) -> None:
        self._waiting_for = "the local Ray cluster to start"
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        temp = self.session_dir
        temp.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = [
            ray,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--object-store-memory={self.object_store_memory}",
            f"--num-gpus={self.num_gpus}",
            f"--temp-dir={temp}",
            # fixed defaults (52365, 10001, ...) would clash with any other Ray on this machine
            *(f"--{option}={free_port()}" for option in OWN_PORTS),
            "--disable-usage-stats",
        ]
        if self.num_cpus:
            command.append(f"--num-cpus={self.num_cpus}")
        self.log.info("Starting a local Ray head: %s", " ".join(command))
        # on a small, busy machine Ray's agents take longer to come up than its defaults allow:
        # the raylet would give up on its dashboard agent and on registering with the GCS
        env = {
            "RAY_raylet_start_wait_time_s": "180",
            "RAY_agent_register_timeout_ms": "180000",
            **self.ray_env(),
        }
        for attempt in range(1, START_ATTEMPTS + 1):
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            output, _ = await process.communicate()
            if process.returncode == 0:
                break
            self.log.error(
                "ray start failed (attempt %d):\n%s", attempt, output.decode(errors="replace")[-4000:]
            )
            await asyncio.to_thread(self.stop_local_head)  # what the failed attempt left behind
        else:
            self._waiting_for = "the local Ray cluster, which failed to start (see the service log)"
            raise RuntimeError("ray start failed")
        deadline = time.monotonic() + self.start_timeout
        while not await asyncio.to_thread(self._alive):
            if time.monotonic() > deadline:
                self._waiting_for = "the local Ray cluster, which never answered (see the service log)"
                raise RuntimeError(f"Ray's dashboard at {self.dashboard_url} did not answer; logs in {temp}")
            await asyncio.sleep(0.5)

    @property
    def session_dir(self) -> Path:
        """Ray's temp dir: short, because Ray puts Unix sockets in it (at most 107 bytes a path)."""
        digest = hashlib.sha256(str(Path(self.state_dir).resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"lavahub-ray-{digest}"

    def stop_local_head(self, timeout: float = 15) -> int:
        """Stop this head's processes only (`ray stop` would stop every Ray on the machine).

        They are found by the session directory or the GCS address on their command
        lines (Ray's client server names only the latter), with all their children
        (the raylet's agents and workers). Returns how many were stopped.
        """
        session, gcs_port = str(self.session_dir), f":{self.port}"
        ours = []
        for process in psutil.process_iter(["cmdline"]):
            try:
                if any(
                    session in part or (part.startswith("--address=") and part.endswith(gcs_port))
                    for part in process.info["cmdline"] or []
                ):
                    ours.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        for process in list(ours):  # the raylet's agents name neither on their command lines
            with contextlib.suppress(psutil.NoSuchProcess):
                ours.extend(child for child in process.children(recursive=True) if child not in ours)
        for process in ours:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
        _, alive = psutil.wait_procs(ours, timeout=timeout)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        return len(ours)

    @property
    def expected_capacity(self) -> Resources | None:
        """A local head's size is known before it answers: what it is started with."""
        if self.address:
            return None
        return Resources(cpus=float(self.num_cpus or os.cpu_count() or 1), memory=0, gpus=self.num_gpus)

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def waiting_for(self) -> str | None:
        return None if self._ready else self._waiting_for

    def _client(self) -> Any:
        """One Jobs API client: making one costs an HTTP round-trip (a version check)."""
        if self._job_client is None:
            from ray.job_submission import JobSubmissionClient

            token = self.token
            headers = {"Authorization": f"Bearer {token}"} if token else None
            self._job_client = JobSubmissionClient(self.dashboard_url, headers=headers)
        return self._job_client

    # -- jobs ------------------------------------------------------------------------
    async def usage(self) -> ClusterUsage | None:
        if not self._ready:
            return None
        try:
            response = await asyncio.to_thread(self._get, "/api/cluster_status")
            usage = response.json()["data"]["clusterStatus"]["loadMetricsReport"]["usage"]
        except (requests.RequestException, KeyError, ValueError, TypeError):
            return None
        pick = lambda key, i: usage.get(key, [0.0, 0.0])[i]  # noqa: E731
        return ClusterUsage(
            used=Resources(pick("CPU", 0), int(pick("memory", 0)), int(pick("GPU", 0))),
            total=Resources(pick("CPU", 1), int(pick("memory", 1)), int(pick("GPU", 1))),
        )

    async def submit(self, job: Job) -> None:
        # the job directory holds code and spec already; the entrypoint names only that directory
        entrypoint = shlex.join([sys.executable, "-m", "services.jobs.launcher", job.job_dir])
        try:
            await asyncio.to_thread(
                self._client().submit_job,
                entrypoint=entrypoint,
                submission_id=SUBMISSION_PREFIX + job.id,
                entrypoint_num_cpus=0,
                # the launcher and every process it starts carry the job's id from exec on
                runtime_env={"env_vars": {"LAVAHUB_JOB_ID": job.id}},
                metadata={"lavahub_user": job.user, "lavahub_project": job.project, "lavahub_name": job.name},
            )
        except RuntimeError as e:
            # a new cluster answers before its job agent is up ("No available agent ... try again later")
            if "status code 5" in str(e) or "try again" in str(e):
                raise BackendUnavailable(str(e)) from e
            raise

    async def cancel(self, job: Job) -> None:
        await asyncio.to_thread(self._client().stop_job, SUBMISSION_PREFIX + job.id)

    async def status(self, job: Job) -> Observation:
        status = await asyncio.to_thread(self._client().get_job_status, SUBMISSION_PREFIX + job.id)
        state_file = Path(job.job_dir) / "state.json"
        launcher = None
        if state_file.exists():
            try:
                launcher = json.loads(state_file.read_text())
            except ValueError:
                launcher = None  # being rewritten; read it next time
        return from_ray(str(status.value if hasattr(status, "value") else status), launcher)

    async def logs(self, job: Job, state_dir: Path, *, final: bool = False) -> list[str]:
        tail = self._tails.get(job.id)
        if tail is None:
            tail = self._tails[job.id] = LogTail(Path(job.job_dir) / "logs", state_dir / "positions.json")
        try:
            return await asyncio.to_thread(tail.read, final=final)
        finally:
            if final:
                del self._tails[job.id]

"""Jobs on Ray: a local head on loopback (started or reused), or any Ray cluster by address.

Every job goes to the dispatcher, one detached actor on the cluster (`dispatcher.py`),
through a Ray driver of the service's own (`bridge.py`): it reserves every worker at
once with a placement group (all or nothing, like Volcano's gang), then runs the
cell in N worker processes under the job execution contract. The dispatcher pushes
each job's state changes; the workers' logs are files the service follows (`tail.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
from lavahub_jupyter.runtime.contract import PASSED_THROUGH, RESULT_FILE
from traitlets import Any as AnyTrait
from traitlets import Integer, Unicode

from spawner.accounts import AccountError, Naming, lookup
from spawner.holdings import CLUSTER, Holding, Holdings
from spawner.resources import Resources

from ...models import Job, JobSpec, Observation
from ..base import (
    Backend,
    BackendState,
    BackendUnavailable,
    Capabilities,
    Diagnosis,
    JobRefused,
    JobSource,
    ResultUnavailable,
    shortfalls,
)
from ..untrusted import Untrusted, read_capped
from .bridge import Bridge, BridgeGone
from .jobdir import launcher_spec, volume_of, write_job_dir
from .processes import stop_all
from .states import observation
from .tail import LogTail

START_ATTEMPTS = 2  # a raylet that misses its registration on a busy machine gets one more go
HEALTH_INTERVAL = 2.0  # seconds between two checks that the cluster still answers
HEALTH_FAILURES = 3  # checks in a row that fail before the cluster counts as gone
WARM_WORKERS = 8  # idle Ray worker processes a local head keeps
RESTART_BACKOFF = (5.0, 60.0)  # a head that fails to start is tried again after 5 s, at most 60 s
PORTS_FILE = "ports.json"  # the local head's ports, when its configured ones were taken
BRIDGE_TIMEOUT = 120  # seconds for the service's Ray driver to connect and find the dispatcher
CHANGES_WAIT = 5.0  # seconds one `changes` call waits for news before it is asked again
DEFAULT_GCS_PORT = 6379
JOINING = "the jobs service to join the Ray cluster"  # what pending jobs wait for meanwhile
CAPACITY_TTL = 5.0  # seconds the cluster's total is taken as known
HEAD_HOLDER = "local-ray-head"  # how the local head's GPUs are recorded in the holdings
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
        port: int = s.getsockname()[1]
        return port


def head_gpus(machine: int, held: Iterable[int] | Mapping[int, str]) -> tuple[int, ...]:
    """The GPUs a local head is offered: this machine's (NVML indices 0..machine-1) no one else holds."""
    taken = set(held)
    return tuple(i for i in range(machine) if i not in taken)


def head_gpu_env(machine: int, offered: Iterable[int]) -> dict[str, str]:
    """What makes the head see only `offered` (numbered as `nvidia-smi` does); nothing without GPUs."""
    if not machine:
        return {}
    return {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": ",".join(map(str, offered))}


def port_taken(port: int) -> bool:
    """Whether something on this machine listens on `port` (any address)."""
    with socket.socket() as s:
        try:
            s.bind(("", port))
        except OSError:
            return True
        return False


class RayBackend(Backend):
    """Jobs as Ray jobs; its settings are the config's `jobs.ray` section (`RayConfig`)."""

    capabilities = Capabilities(frameworks=("python", "pytorch", "ray"), driver_frameworks=frozenset({"ray"}))
    final_grace = 0.0  # the dispatcher reports an end once every worker stopped: its files are whole

    settings = AnyTrait(help="The `jobs.ray` config section (lavahub.config.RayConfig).")
    state_dir = Unicode(help="Where the local head keeps its token, logs and session files.")
    num_gpus = Integer(
        0,
        help="This machine's GPUs (the NVML inventory); the local head is offered those no workspace holds.",
    )
    database_url = Unicode(
        "",
        help="lavahub's database, where workspaces record their GPUs: the local head is offered the "
        "others and records them, so that workspaces started later are given other GPUs first. "
        "Empty: every GPU of the machine, recorded nowhere.",
    )
    max_result_bytes = Integer(64 * 2**20, help="The largest result handed back (jobs.max_result_bytes).")
    max_line_bytes = Integer(64 * 2**10, help="The longest log line kept (jobs.logs.max_line_bytes).")
    accounts = AnyTrait(
        None,
        allow_none=True,
        help="How users' OS accounts are named (spawner.accounts.Naming) when every worker runs as "
        "its job's owner (the config's accounts); None: workers run as the platform's user.",
    )

    _ready = False
    _token: str | None = None
    _bridge: Bridge | None = None
    _capacity: tuple[float, Resources] | None = None  # (when asked, the cluster's total)
    _waiting_for: str | None = "the Ray cluster to start"
    _start_task: asyncio.Task[None] | None = None

    _health_task: asyncio.Task[None] | None = None
    _offered: tuple[int, ...] | None = None  # the GPUs the local head was started with

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self._tails: dict[str, LogTail] = {}  # one per job being followed: offsets stay in memory
        self._ports: dict[str, int] | None = None
        self._cancel_later: set[str] = set()  # cancelled while the cluster did not answer

    @classmethod
    def from_config(cls, config: Any) -> RayBackend:
        """The backend for a platform config: its `jobs.ray` section and this machine's GPUs."""
        from spawner.gpus import inventory

        return cls(
            settings=config.jobs.ray,
            state_dir=str(config.data_dir / "ray"),
            num_gpus=len(inventory()),
            database_url=config.database_url,
            max_result_bytes=config.jobs.max_result_bytes,
            max_line_bytes=config.jobs.logs.max_line_bytes,
            accounts=Naming(config.accounts.user_prefix, config.accounts.group_prefix)
            if config.os_accounts
            else None,
        )

    @property
    def address(self) -> str:
        return self.settings.address or ""

    @property
    def gcs_address(self) -> str:
        """Where the service's Ray driver joins the cluster: the local head's GCS, else the config's."""
        if not self.address:
            return f"127.0.0.1:{self.port}"
        return self.settings.gcs_address or f"{urlparse(self.address).hostname}:{DEFAULT_GCS_PORT}"

    @property
    def port(self) -> int:
        return self.ports["port"]

    @property
    def dashboard_port(self) -> int:
        return self.ports["dashboard_port"]

    @property
    def ports(self) -> dict[str, int]:
        """The local head's GCS and dashboard ports: the config's, unless the head had to take others.

        Recorded in `<state_dir>/ports.json`, so a restarted service and `lavahub down` find it.
        """
        if self._ports is None:
            configured = {
                "port": int(self.settings.port),
                "dashboard_port": int(self.settings.dashboard_port),
            }
            try:
                recorded = json.loads((Path(self.state_dir) / PORTS_FILE).read_text())
                self._ports = {key: int(recorded[key]) for key in configured}
            except (OSError, ValueError, KeyError, TypeError):
                self._ports = configured
        return self._ports

    def _choose_ports(self) -> None:
        """Before starting a head: keep the ports unless something else listens there."""
        taken = [key for key, port in self.ports.items() if port_taken(port)]
        if not taken:
            return
        chosen = {**self.ports, **{key: free_port() for key in taken}}
        self.log.warning(
            "Ray's %s taken by another program; the local head uses %s instead",
            " and ".join(f"{key} {self.ports[key]}" for key in taken),
            ", ".join(f"{key} {chosen[key]}" for key in taken),
        )
        path = Path(self.state_dir) / PORTS_FILE
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps(chosen))
        self._ports = chosen

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
        """Environment for the local head (and so every job's launcher): token auth on.

        Nothing else of the service's own environment (its hub token, the config's
        path, the operator's HOME) reaches the head, whose processes start every job.
        """
        env = {key: os.environ[key] for key in PASSED_THROUGH if key in os.environ}
        env["HOME"] = self.state_dir
        token = self.token
        if token:
            env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        return env

    def _alive(self) -> bool:
        """Whether the cluster's GCS takes connections: all the service's driver needs (the
        dashboard comes up seconds later, and nothing of the service waits for it)."""
        host, _, port = self.gcs_address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            return False

    async def _dispatcher_answers(self) -> bool:
        try:
            await self._call("describe", timeout=5)
        except BridgeGone:
            return False
        return True

    async def setup(self) -> None:
        self._start_task = asyncio.ensure_future(self._connect())
        self._health_task = asyncio.ensure_future(self._keep_alive())

    async def cleanup(self) -> None:
        for task in (self._start_task, self._health_task):
            if task is not None:
                task.cancel()
        if self._bridge is not None:
            await self._bridge.stop()

    async def _connect(self) -> None:
        """Reach the cluster, starting (or restarting) a local head until one answers."""
        joining: asyncio.Task[bool] | None = None
        try:
            if await asyncio.to_thread(self._alive):
                self.log.info("Using the Ray cluster at %s", self.dashboard_url)
            elif self.address:
                self._waiting_for = f"the Ray cluster at {self.address} to answer"
                while not await asyncio.to_thread(self._alive):
                    await asyncio.sleep(2)
            else:
                # the service's driver imports Ray (seconds) while the head starts, and joins it once
                # up, at the port the head takes (chosen first)
                await asyncio.to_thread(self._choose_ports)
                joining = asyncio.ensure_future(self._start_bridge())
                await self._start_local_head_until_up()
            self._waiting_for = JOINING
            await (joining or self._start_bridge())
        finally:
            if joining is not None and not joining.done():
                joining.cancel()
        self._ready, self._waiting_for = True, None
        for job_id in list(self._cancel_later):  # an external cluster may still run them
            await self._call("cancel", job_id=job_id)
            self._cancel_later.discard(job_id)

    async def _start_local_head_until_up(self) -> None:
        delay = RESTART_BACKOFF[0]
        while True:
            try:
                await self._start_local_head()
                return
            except RuntimeError as e:
                # every pending job's explanation says why, and that it is tried again
                self._waiting_for = f"the local Ray cluster, which failed to start ({e}); retrying"
                self.log.error("The local Ray head did not start: %s; trying again in %.0f s", e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_BACKOFF[1])

    async def _start_bridge(self, tries: int | None = None) -> bool:
        """The service's Ray driver, connected and holding the dispatcher; False if `tries` failed."""
        attempt = 0
        while tries is None or attempt < tries:
            attempt += 1
            bridge = Bridge(self.ray_env(), self.gcs_address, None if self.address else "127.0.0.1")
            try:
                described = await bridge.start(BRIDGE_TIMEOUT)
            except BridgeGone as e:
                self.log.error("%s; trying again", e)
                await asyncio.sleep(RESTART_BACKOFF[0])
                continue
            self._bridge = bridge
            self.log.info("Joined the Ray cluster at %s: dispatcher %s", self.gcs_address, described)
            return True
        return False

    async def _call(self, op: str, timeout: float = 30, **args: Any) -> Any:
        if self._bridge is None:
            raise BridgeGone("the service has not joined the Ray cluster yet")
        return await self._bridge.call(op, timeout, **args)

    async def _keep_alive(self) -> None:
        """Notice a cluster (or a dispatcher) that stopped answering, and reconnect (a local head:
        start it again). Jobs the new cluster does not know end `failed`, "lost when the cluster
        restarted" (`watch`); their lines written before the fault are kept."""
        failures = 0
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            if not self._ready:
                continue
            healthy = await asyncio.to_thread(self._alive) and await self._dispatcher_answers()
            failures = 0 if healthy else failures + 1
            if failures < HEALTH_FAILURES:
                continue
            failures, self._ready = 0, False
            if self._bridge is not None:
                await self._bridge.stop()
            self._waiting_for = JOINING
            if await asyncio.to_thread(self._alive) and await self._start_bridge(tries=1):
                self.log.error("The dispatcher stopped answering; the service joined the cluster again")
                self._ready, self._waiting_for = True, None
                continue
            if self.address:
                self._waiting_for = f"the Ray cluster at {self.address} to answer again"
            else:
                self._waiting_for = "the local Ray cluster, which stopped, to start again"
                await asyncio.to_thread(self.stop_local_head)  # whatever is left of it
            self.log.error("The Ray cluster at %s stopped answering; reconnecting", self.dashboard_url)
            self._start_task = asyncio.ensure_future(self._connect())
            await self._start_task

    async def _start_local_head(self) -> None:
        self._waiting_for = "the local Ray cluster to start"
        await asyncio.to_thread(self._choose_ports)
        ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        temp = self.session_dir
        temp.mkdir(parents=True, exist_ok=True, mode=0o700)
        offered = await asyncio.to_thread(self._take_gpus)
        command = [
            ray,
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={self.port}",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            f"--object-store-memory={self.settings.object_store_memory}",
            f"--num-gpus={len(offered)}",
            f"--temp-dir={temp}",
            # fixed defaults (52365, 10001, ...) would clash with any other Ray on this machine
            *(f"--{option}={free_port()}" for option in OWN_PORTS),
            "--disable-usage-stats",
        ]
        if self.settings.num_cpus:
            command.append(f"--num-cpus={self.settings.num_cpus}")
        self.log.info("Starting a local Ray head: %s", " ".join(command))
        # on a small, busy machine Ray's agents take longer to come up than its defaults allow:
        # the raylet would give up on its dashboard agent and on registering with the GCS
        env = {
            "RAY_raylet_start_wait_time_s": "180",
            "RAY_agent_register_timeout_ms": "180000",
            # idle Ray workers kept warm (they run only platform code): a cell's workers start
            # on them instead of waiting about a second for a new Python process each
            "RAY_num_workers_soft_limit": str(WARM_WORKERS),
            "RAY_idle_worker_killing_time_threshold_ms": str(10 * 60 * 1000),
            **self.ray_env(),
            **head_gpu_env(self.num_gpus, offered),
        }
        last = ""
        for attempt in range(1, START_ATTEMPTS + 1):
            process = await asyncio.create_subprocess_exec(
                *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
            output, _ = await process.communicate()
            if process.returncode == 0:
                break
            text = output.decode(errors="replace")
            self.log.error("ray start failed (attempt %d):\n%s", attempt, text[-4000:])
            last = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")
            await asyncio.to_thread(self.stop_local_head)  # what the failed attempt left behind
        else:
            raise RuntimeError(f"`ray start` exited with an error: {last[:300] or 'no output'}")
        deadline = time.monotonic() + self.settings.start_timeout
        while not await asyncio.to_thread(self._alive):
            if time.monotonic() > deadline:
                await asyncio.to_thread(self.stop_local_head)
                raise RuntimeError(
                    f"its GCS at {self.gcs_address} did not answer in "
                    f"{self.settings.start_timeout} s; Ray's logs are in {temp}"
                )
            await asyncio.sleep(0.5)

    def _take_gpus(self) -> tuple[int, ...]:
        """The GPUs for a head about to start: those no workspace holds, recorded as the head's
        (in the same transaction), so that workspaces started later are given others first."""
        offered = tuple(range(self.num_gpus))
        if self.num_gpus and self.database_url:
            head = Holding(CLUSTER, HEAD_HOLDER, user="", project="", resources=Resources())
            taken = Holdings(self.database_url).reserve(
                head, choose_gpus=lambda held: head_gpus(self.num_gpus, held)
            )
            offered = taken.gpu_indices
        if len(offered) < self.num_gpus:
            self.log.info(
                "The local Ray head gets GPUs %s: workspaces hold the machine's others",
                ",".join(map(str, offered)) or "none",
            )
        self._offered = offered
        return offered

    @property
    def session_dir(self) -> Path:
        """Ray's temp dir: short, because Ray puts Unix sockets in it (at most 107 bytes a path)."""
        digest = hashlib.sha256(str(Path(self.state_dir).resolve()).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"lavahub-ray-{digest}"

    def stop_cluster(self) -> str:
        if self.address:
            return f"lavahub uses the Ray cluster at {self.address}; it is not lavahub's to stop"
        stopped = self.stop_local_head()
        if self.num_gpus and self.database_url:  # its GPUs are the workspaces' again
            Holdings(self.database_url).release(CLUSTER, HEAD_HOLDER)
        return (
            f"stopped the local Ray cluster ({stopped} processes)"
            if stopped
            else "no local Ray cluster was running"
        )

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
        stop_all(ours, timeout)
        return len(ours)

    @property
    def ready(self) -> bool:
        return self._ready

    async def capacity(self) -> Resources | None:
        """The cluster's total (asked at most every CAPACITY_TTL s: every submission checks it); a
        local head's is known before it answers (what it is started with)."""
        if self._capacity is not None and time.monotonic() - self._capacity[0] < CAPACITY_TTL:
            return self._capacity[1]
        usage = await self._usage()
        if usage is not None:
            self._capacity = (time.monotonic(), usage[1])
            return usage[1]
        if self.address:
            return None
        cpus = float(self.settings.num_cpus or os.cpu_count() or 1)
        gpus = len(self._offered) if self._offered is not None else self.num_gpus
        return Resources(cpus=cpus, memory=0, gpus=gpus)

    # -- jobs ------------------------------------------------------------------------
    async def _usage(self) -> tuple[Resources, Resources] | None:
        """(used, total) of the whole cluster, as the dispatcher sees it, if it answers."""
        if not self._ready:
            return None
        try:
            usage = await self._call("usage", timeout=10)
        except BridgeGone:
            return None
        total, free = usage["total"], usage["free"]

        def resources(of: dict[str, float]) -> Resources:
            return Resources(of["CPU"], int(of["memory"]), int(of["GPU"]))

        used = {key: max(0.0, total[key] - free[key]) for key in total}
        return resources(used), resources(total)

    async def diagnose(self, job: Job) -> Diagnosis:
        if not self._ready:
            return Diagnosis(waiting_for=self._waiting_for)
        usage = await self._usage()
        return Diagnosis(shortfalls=shortfalls(job.total, *usage) if usage else ())

    def may_have_output(self, job: Job) -> bool:
        """No: the dispatcher reports a job running before it starts any worker, so a pending job
        has printed nothing (its files are not read every round while it waits)."""
        return False

    async def submit(self, spec: JobSpec) -> BackendState:
        account = None
        if self.accounts is not None:
            try:
                account = await asyncio.to_thread(lookup, spec.user, self.accounts)
            except AccountError as e:
                raise JobRefused(str(e)) from None
        try:
            await asyncio.to_thread(write_job_dir, spec, (account.uid, account.gid) if account else None)
        except Untrusted as e:  # the user's own volume holds something planted on the way
            raise JobRefused(f"its job directory cannot be written safely: {e}") from None
        # the dispatcher's spec comes from here, not from the job directory its user can change;
        # the cell's code is a file in that directory, never part of a command line
        try:
            await self._call(
                "submit", job_id=spec.id, job_dir=spec.job_dir, spec=launcher_spec(spec, account)
            )
        except BridgeGone as e:
            raise BackendUnavailable(str(e)) from None
        return {"dispatcher": True}

    async def cancel(self, job: Job) -> None:
        if not self._ready:
            self._cancel_later.add(job.id)  # stopped once the cluster answers again
            return
        await self._call("cancel", job_id=job.id)

    async def status(self, job: Job) -> Observation:
        if not self._ready:
            raise BackendUnavailable(self._waiting_for or "the Ray cluster is not ready")
        said = await self._call("status", job_ids=[job.id])
        return observation(said.get(job.id))

    async def watch(self, jobs: JobSource) -> AsyncIterator[tuple[str, Observation]]:
        """The dispatcher's changes as they happen: each `changes` call returns as soon as a job's
        state changed. A first look (and a look at a new dispatcher, after the cluster restarted)
        covers every watched job: one the dispatcher does not know is lost."""
        epoch, since = None, 0
        while True:
            if not self._ready:
                epoch = None
                await asyncio.sleep(0.1)
                continue
            first = epoch is None
            watched = {job.id for job in jobs()} if first else set()
            try:
                said = await self._call(
                    "changes",
                    timeout=CHANGES_WAIT + 10,
                    since=0 if first else since,
                    wait=0 if first else CHANGES_WAIT,
                )
            except BridgeGone as e:
                self.log.warning("Watching the dispatcher: %s", e)
                epoch = None
                await asyncio.sleep(0.5)
                continue
            if not first and said["epoch"] != epoch:
                epoch = None  # a new dispatcher: look at every job again
                continue
            epoch, since = said["epoch"], said["version"]
            for job_id, record in said["changed"].items():
                yield job_id, observation(record)
            for job_id in watched - said["changed"].keys():
                yield job_id, observation(None)

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        tail = self._tails.get(job.id)
        if tail is None:
            positions = Path(self.state_dir) / "log-positions" / f"{job.id}.json"
            positions.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tail = self._tails[job.id] = LogTail(
                Path(job.job_dir) / "logs",
                positions,
                workers=job.workers,
                max_line_bytes=self.max_line_bytes,
                below=volume_of(job.job_dir),
            )
        try:
            return await asyncio.to_thread(tail.read, final=final)
        finally:
            if final:
                del self._tails[job.id]

    async def result(self, job: Job) -> bytes | None:
        path = Path(job.job_dir) / RESULT_FILE
        try:
            return await asyncio.to_thread(
                read_capped, path, self.max_result_bytes, below=volume_of(job.job_dir)
            )
        except FileNotFoundError:
            return None
        except Untrusted as e:
            self.log.warning("Job %s: its result is not returned: %s", job.id, e)
            raise ResultUnavailable(f"{e} (jobs.max_result_bytes is {self.max_result_bytes})") from None

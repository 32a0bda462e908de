"""The backend conformance suite's harness: one real backend behind the service's own supervisor.

Each backend in `BACKENDS` is started once per module from a platform config,
exactly as the jobs service builds it (`load_backend`); jobs are accepted the
way the service accepts them (payload, then record) and run by the real
`Supervisor`, store and logs on an event loop of their own. The tests then
assert the same states, logs, exit codes and explanations for every backend.
A backend joins by adding a `Kind` here: `ray` runs a local Ray head; `volcano` runs
a real kube-apiserver with Volcano's CRDs, the tests' Volcano (`tests/kubernetes/volcano.py`)
and a kubelet that runs pods as processes (`tests/kubernetes/process_kubelet.py`).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lavahub import local_setup
from lavahub.config import parse_config
from services.jobs.backends import load_backend
from services.jobs.backends.base import Backend
from services.jobs.logs import JobLogs
from services.jobs.models import Job, JobSpec, JobState
from services.jobs.payloads import Payloads
from services.jobs.spec import new_job_id
from services.jobs.store import JobStore
from spawner.resources import Resources
from spawner.volumes import Volume, by_kind, local_volume_plan
from spawner.workspace import WorkspaceRequest
from tests.conftest import passable
from tests.hubclient import free_port

from . import volcano

T = TypeVar("T")
# the platform's own secrets, in the environment the backend starts from: no job may see them
PLATFORM_SECRETS = {
    "JUPYTERHUB_API_TOKEN": "platform-secret-hub-token",
    "LAVAHUB_CONFIG": "/platform-secret/lavahub.yaml",
    "JPY_COOKIE_SECRET": "platform-secret-cookie",
}
START_TIMEOUT = 240  # a local Ray head on a busy 2-core machine
CPUS = 2  # every backend's cluster is given exactly this many CPUs, so the numbers are the same
LOG_MAX_BYTES = 4 * 2**20  # jobs.logs.max_bytes for the suite: small, so that a flood reaches it


class Loop:
    """An asyncio loop in a thread, so that the supervisor runs while a plain test waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="conformance-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Harness:
    """A backend, the real supervisor in front of it, and helpers to submit and wait."""

    def __init__(self, name: str, backend: Backend, loop: Loop, root: Path, kind: Kind):
        from services.jobs.supervisor import Supervisor

        self.name, self.backend, self.loop, self.root, self.kind = name, backend, loop, root, kind
        self.store = JobStore(f"sqlite:///{root / 'lavahub.sqlite'}")
        self.logs = JobLogs(root / "jobs", max_bytes=LOG_MAX_BYTES)
        self.payloads = Payloads(root / "jobs")
        self.supervisor = Supervisor(self.store, backend, self.logs, self.payloads)

    def submit(
        self,
        code: str,
        *,
        workers: int = 1,
        cpus: float = 0.5,
        timeout: int = 120,
        framework: str = "python",
        exports: bytes | None = None,
        result: str | None = None,
        env: dict[str, str] | None = None,
        user: str = "alice",
    ) -> Job:
        job_id = new_job_id()
        volumes = self.volumes(user)
        home = self.home(user)
        spec = JobSpec(
            id=job_id, name="conformance", user=user, project="default", template="python",
            template_version=1, image="python:3.11", framework=framework, workers=workers,
            resources=Resources(cpus=cpus, memory=0, gpus=0), timeout=timeout, env=env or {}, code=code,
            cwd=home, job_dir=f"{home}/.lavahub/jobs/{job_id}", volumes=volumes, exports=exports,
            result=result, request=self.kind.request(cpus),
        )  # fmt: skip
        self.payloads.save(spec.id, spec.code, spec.exports)
        return self.store.add(spec)

    def volumes(self, user: str = "alice") -> tuple[Volume, ...]:
        """The user's volumes (alice's by default) as their jobs' workers see them."""
        return self.kind.volumes(self.root, user)

    def home(self, user: str = "alice") -> str:
        """The user's personal directory as their workers see it: where they start, and their HOME."""
        self.local_home(user)
        return by_kind(self.volumes(user))["personal"].mount_path

    def local_home(self, user: str = "alice") -> Path:
        """The same directory, where this test process finds it (made if missing, as theirs)."""
        return self.kind.local_home(self.root, user)

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        assert job is not None
        return job

    def wait(self, job_id: str, states: set[JobState], timeout: float = 180) -> Job:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id)).state not in states:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} is {job.state.value} after {timeout} s, not {states}")
            time.sleep(0.1)
        return job

    def wait_logs(self, job_id: str, done: Callable[[list[str]], bool], timeout: float = 60) -> list[str]:
        deadline = time.monotonic() + timeout
        while not done(lines := self.lines(job_id)):
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id}'s log after {timeout} s: {lines}")
            time.sleep(0.1)
        return lines

    def lines(self, job_id: str) -> list[str]:
        return self.logs[job_id].read()

    def complete_logs(self, job_id: str, timeout: float = 30) -> list[str]:
        """Every line, once the supervisor has copied the last ones of an ended job."""
        deadline = time.monotonic() + timeout
        while not self.job(job_id).log_complete:
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id}'s log is not complete after {timeout} s")
            time.sleep(0.1)
        return self.lines(job_id)


def ray_backend(root: Path, loop: Loop) -> Backend:
    config = parse_config(
        {
            "data_dir": str(root / "data"),
            "storage": {"local": {"root": str(root / "storage")}},
            "jobs": {
                "logs": {"max_bytes": LOG_MAX_BYTES},
                "ray": {
                    "port": free_port(),
                    "dashboard_port": free_port(),
                    "num_cpus": CPUS,
                    "object_store_memory": "128Mi",
                },
            },
        }
    )
    # as `lavahub up` does: as root, the users' accounts and their directories (workers run as them)
    (root / "data").mkdir(exist_ok=True)
    local_setup.prepare(config)
    return load_backend(config)


def stop_ray(backend: Backend, loop: Loop) -> None:
    backend.stop_local_head()  # type: ignore[attr-defined]


def crash_ray(backend: Backend, loop: Loop) -> int:
    """kill -9 of the local head's GCS server and raylet, as a crash or an OOM kill does."""
    import psutil

    session = str(backend.session_dir)  # type: ignore[attr-defined]
    killed = 0
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if session in cmdline and any(name in cmdline for name in ("gcs_server", "raylet")):
            process.kill()
            killed += 1
    return killed


def local_volumes(root: Path, user: str = "alice") -> tuple[Volume, ...]:
    return local_volume_plan(user, "default", admin=False, root=root / "storage")


def local_home(root: Path, user: str = "alice") -> Path:
    home = Path(by_kind(local_volumes(root, user))["personal"].mount_path)
    home.mkdir(parents=True, exist_ok=True)
    return home


def ray_user(owner: str = "alice") -> tuple[str, int]:
    # as root every worker runs as its owner's own OS account (lavahub up made it), else as ours
    user = f"lavahub-{owner}" if os.geteuid() == 0 else owner
    return user, pwd.getpwnam(user).pw_uid if os.geteuid() == 0 else os.geteuid()


def no_request(cpus: float) -> WorkspaceRequest | None:
    return None


@dataclass(frozen=True)
class Kind:
    """How the suite makes a backend, stops what it started, and crashes its cluster,
    and what a job sees there: its volumes, the account it runs as, how a lost job reads."""

    make: Callable[[Path, Loop], Backend]
    stop: Callable[[Backend, Loop], None]
    crash: Callable[[Backend, Loop], int]
    volumes: Callable[[Path, str], tuple[Volume, ...]] = local_volumes
    local_home: Callable[[Path, str], Path] = local_home
    worker_user: Callable[[], tuple[str, int]] = ray_user
    request: Callable[[float], WorkspaceRequest | None] = no_request
    lost_reason: str = "lost when the cluster restarted"
    cgroups: bool = True  # workers are held to their share by lavahub's own cgroups
    reads_job_dir: bool = True  # the service reads files a job can write (its launcher's logs)
    one_machine: bool = True  # all of a job's workers share one machine (else: a pod each)


BACKENDS: dict[str, Kind] = {
    "ray": Kind(ray_backend, stop_ray, crash_ray),
    "volcano": Kind(
        volcano.make,
        volcano.stop,
        volcano.crash,
        volumes=volcano.volumes,
        local_home=volcano.local_home,
        worker_user=volcano.worker_user,
        request=volcano.request,
        lost_reason=volcano.LOST,
        cgroups=False,
        reads_job_dir=False,
        one_machine=False,
    ),
}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def harness(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    yield from run_harness(request.param, tmp_path_factory)


def run_harness(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One backend's harness for a module: started, ready, and stopped with all it started."""
    kind = BACKENDS[name]
    make, stop = kind.make, kind.stop
    root = passable(tmp_path_factory.mktemp(f"backend-{name}"))
    saved = {key: os.environ.get(key) for key in PLATFORM_SECRETS}
    os.environ.update(PLATFORM_SECRETS)  # as the jobs service's own environment has them
    loop = Loop()
    backend = make(root, loop)
    try:
        loop.run(backend.setup())
        deadline = time.monotonic() + START_TIMEOUT
        while not backend.ready:
            if time.monotonic() > deadline:
                pytest.fail(f"the {name} backend is not ready after {START_TIMEOUT} s")
            time.sleep(0.2)
        harness = Harness(name, backend, loop, root, kind)
        loop.run(_start(harness))
        yield harness
        loop.run(harness.supervisor.stop())
        loop.run(backend.cleanup())
    finally:
        stop(backend, loop)
        loop.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _start(harness: Harness) -> None:
    harness.supervisor.start()

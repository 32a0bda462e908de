"""The jobs service's costs, each against a baseline measured in the same run on the same machine.

(A cell job's own speed, against Ray's Jobs API and torchrun, is benchmarks/cells.py.)
1. API: accepted submissions/s (real 1-worker jobs, POSTs only from one client, then cancelled) and
   `GET jobs` latency with 10,000 stored jobs, against GET /hub/api/user through the same proxy
   (the hub's own API round-trip). Target: `GET jobs` p99 <= 50 ms.
2. Logs: a job prints a 2,000-line burst, then 50 lines 20 ms apart (`<i> <time.time()>`): burst
   lines/s (first print -> last arrival) and the latency a line gains (arrival - print) through
   `logs?follow=true`, against polling the worker's log file every 10 ms. Target: p95 <= 300 ms.
Run from the repository root: `.venv/bin/python benchmarks/jobs.py`. Exits 1 if a target is missed.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil
import requests
from sqlalchemy.orm import Session

from lavahub.config import RayConfig
from services.jobs.backends.ray import RayBackend
from services.jobs.spec import new_job_id
from services.jobs.store import JobRow, JobStore
from tests.hubclient import HubClient, free_port
from tests.integration.conftest import JOBS_PLATFORM, Platform, RayCluster, start_platform

POLL = 0.1  # how often a job's state is polled
DONE = {"succeeded", "failed", "cancelled"}
BURST, SLOW = 2000, 50
STREAM = (
    f"import time\nfor i in range({BURST}):\n    print(i, time.time())\n"
    f"for i in range({BURST}, {BURST + SLOW}):\n    print(i, time.time())\n    time.sleep(0.02)\n"
)
# the tests' platform with jobs on, and room in the default project's CPU quota (3) for the burst
DEFAULT = {**JOBS_PLATFORM["projects"]["default"], "quota": {"cpus": 64}}
BENCH_PLATFORM = {
    **JOBS_PLATFORM,
    "jobs": {"max_workers": 4},
    "projects": {**JOBS_PLATFORM["projects"], "default": DEFAULT},
}
Row = tuple[str, str, str, str, bool | None]  # what, lavahub, baseline, target, passed
Arrivals = dict[int, tuple[float, float]]  # line number -> (printed, arrived)


def stop_head(backend: RayBackend) -> None:
    backend.stop_local_head()
    # stop_local_head misses Ray's client server: its command line does not name the session dir
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or []) + " "
        if "ray.util.client.server" in cmdline and f":{backend.port} " in cmdline:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()


def wait_for_jobs_route(url: str, timeout: float = 120) -> None:
    """The hub answers before the proxy routes /services/jobs/: until then the hub gets (and refuses) it."""
    deadline = time.monotonic() + timeout
    while "openapi" not in requests.get(f"{url}/services/jobs/api/openapi.json", timeout=10).text[:100]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the jobs service is not routed at {url}/services/jobs/ after {timeout}s")
        time.sleep(0.2)


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def wait_job(alice: HubClient, job_id: str, timeout: float = 300, poll: float = POLL) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job := alice.jobs("GET", f"/{job_id}").json())["state"] in DONE:
            return job
        time.sleep(poll)
    raise TimeoutError(f"job {job_id} not done after {timeout}s")


def submit(alice: HubClient, body: dict[str, Any]) -> dict[str, Any]:
    response = alice.jobs("POST", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"submission refused: {response.status_code} {response.text}")
    return response.json()


def api(alice: HubClient, args: argparse.Namespace) -> list[Row]:
    # JobStore.add makes pending rows, which the running supervisor would submit: insert finished ones
    first, start = datetime.now(UTC) - timedelta(days=30), time.perf_counter()
    with (
        Session(JobStore(f"sqlite:///{args.data_dir / 'lavahub.sqlite'}").engine) as session,
        session.begin(),
    ):
        session.add_all(
            JobRow(
                id=new_job_id(), name="stored", user="alice", project="default", template="python",
                framework="python", workers=1, cpus=1.0, memory=2**30, gpus=0, timeout=3600,
                state="succeeded", exit_code=0, created=first + timedelta(minutes=i),
                started=first + timedelta(minutes=i), finished=first + timedelta(minutes=i, seconds=9),
                submitted=True, log_complete=True,
                job_dir=str(args.data_dir / "users/alice/.lavahub/jobs/stored"),
            )
            for i in range(args.stored)
        )  # fmt: skip
    print(f"  stored {args.stored} finished jobs for alice in {time.perf_counter() - start:.1f}s")
    if len(alice.jobs("GET").json()["jobs"]) != 100:
        raise RuntimeError("GET jobs did not return its default 100 jobs")
    listed: list[float] = []
    user: list[float] = []
    for _ in range(args.requests):  # interleaved with the baseline
        for samples, call in ((listed, lambda: alice.jobs("GET")), (user, lambda: alice.api("GET", "user"))):
            start = time.perf_counter()
            call().raise_for_status()
            samples.append(1000 * (time.perf_counter() - start))

    n = args.submissions  # last: each submission reaches Ray, which keeps busy with them for a while
    start = time.perf_counter()
    ids = [submit(alice, {"code": "print(1)\n", "name": "burst"})["id"] for _ in range(n)]
    posts = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(n):
        alice.api("GET", "user").raise_for_status()
    hub = n / (time.perf_counter() - start)
    for job_id in ids:
        alice.jobs("DELETE", f"/{job_id}").raise_for_status()
    cancelled = {job_id: wait_job(alice, job_id) for job_id in ids}
    print(f"  {n} burst jobs -> {sorted({j['state'] for j in cancelled.values()})}")
    p99 = pct(listed, 99)
    return [
        (f"accepted submissions/s ({n})", f"{posts:.1f}", f"{hub:.1f}", "", None),
        (f"GET jobs p50 ms ({args.stored} stored)", f"{statistics.median(listed):.1f}",
         f"{statistics.median(user):.1f}", "", None),
        (f"GET jobs p99 ms ({args.stored} stored)", f"{p99:.1f}", f"{pct(user, 99):.1f}", "<= 50", p99 <= 50),
    ]  # fmt: skip


def record(arrivals: Arrivals, line: str, now: float) -> None:
    number, printed = line.split()
    arrivals[int(number)] = (float(printed), now)


def poll_file(path: Path, arrivals: Arrivals, stop: threading.Event) -> None:
    position, partial = 0, b""
    while not stop.is_set():
        if path.exists():
            with path.open("rb") as f:
                f.seek(position)
                data = f.read()
            now, position = time.time(), position + len(data)
            *lines, partial = (partial + data).split(b"\n")
            for line in lines:
                record(arrivals, line.decode(), now)
        time.sleep(0.01)


def log_stats(arrivals: Arrivals) -> tuple[float, float, float]:
    if missing := BURST + SLOW - len(arrivals):
        raise RuntimeError(f"{missing} of the job's lines never arrived")
    rate = BURST / (arrivals[BURST - 1][1] - arrivals[0][0])
    latency = [1000 * (arrivals[i][1] - arrivals[i][0]) for i in range(BURST, BURST + SLOW)]
    return rate, statistics.median(latency), pct(latency, 95)


def logs(alice: HubClient, args: argparse.Namespace) -> list[Row]:
    job = submit(alice, {"code": STREAM, "name": "stream"})
    service: Arrivals = {}
    direct: Arrivals = {}
    path = args.data_dir / "users/alice/.lavahub/jobs" / job["id"] / "logs/worker-0.log"
    stop = threading.Event()
    poller = threading.Thread(target=poll_file, args=(path, direct, stop), daemon=True)
    poller.start()
    try:
        with alice.jobs("GET", f"/{job['id']}/logs?follow=true", stream=True, timeout=300) as stream:
            for raw in stream.iter_lines():
                now, line = time.time(), raw.decode()
                if line.startswith("[worker-0] "):
                    record(service, line.removeprefix("[worker-0] "), now)
    finally:
        stop.set()
        poller.join()
    if (done := wait_job(alice, job["id"]))["state"] != "succeeded":
        raise RuntimeError(f"log job {done['state']}: {done['reason']}")
    print(f"  the burst was printed at {BURST / (service[BURST - 1][0] - service[0][0]):.0f} lines/s")
    (rate, p50, p95), (file_rate, file_p50, file_p95) = log_stats(service), log_stats(direct)
    return [
        (f"log burst lines/s ({BURST})", f"{rate:.0f}", f"{file_rate:.0f}", "", None),
        ("log latency p50 ms", f"{p50:.0f}", f"{file_p50:.0f}", "", None),
        ("log latency p95 ms", f"{p95:.0f}", f"{file_p95:.0f}", "<= 300", p95 <= 300),
    ]


def terminated(*_: Any) -> None:
    """SIGTERM: tear everything down as on an error, undisturbed by a second SIGTERM."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(143)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=30, help="jobs in the submission burst (30)")
    parser.add_argument("--stored", type=int, default=10_000, help="stored jobs behind GET jobs (10000)")
    parser.add_argument("--requests", type=int, default=200, help="timed GET jobs requests (200)")
    for part in ("logs", "api"):
        parser.add_argument(f"--skip-{part}", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, terminated)
    args.tmp = Path(tempfile.mkdtemp(prefix="lavahub-jobs-bench-")).resolve()
    ports = {"port": free_port(), "dashboard_port": free_port()}
    backend = RayBackend(
        state_dir=str(args.tmp / "ray"), settings=RayConfig(object_store_memory=128 * 2**20, **ports)
    )
    platform: Platform | None = None
    rows: list[Row] = []
    began = time.monotonic()
    try:
        asyncio.run(backend._connect())
        cluster = RayCluster(backend.dashboard_url, backend.gcs_address, backend.token or "")
        platform = start_platform(args.tmp / "platform", BENCH_PLATFORM, cluster)
        wait_for_jobs_route(platform.url)
        print(f"Ray head and platform up in {time.monotonic() - began:.0f}s")
        args.data_dir = platform.data_dir
        alice = platform.client("alice")
        for name, phase in (("logs", logs), ("api", api)):
            if not getattr(args, f"skip_{name}"):
                print(f"{name}:")
                rows += phase(alice, args)
    except BaseException:
        if platform is not None:
            print(f"the hub's and jobs service's log: {platform.log_file} (kept)", file=sys.stderr)
        raise
    finally:
        if platform is not None:
            platform.stop()
        stop_head(backend)
    for directory in (args.tmp, backend.session_dir):  # kept above when something failed
        shutil.rmtree(directory, ignore_errors=True)

    print(f"\n{'measure':34} {'lavahub':>9} {'baseline':>9}  {'target':>7}  result")
    for what, ours, base, target, passed in rows:
        result = "" if passed is None else ("PASS" if passed else "FAIL")
        print(f"{what:34} {ours:>9} {base:>9}  {target:>7}  {result}")
    print("baselines: GET /hub/api/user through the proxy | worker-0.log polled every 10 ms")
    print(f"wall time {time.monotonic() - began:.0f}s")
    return 1 if any(passed is False for *_, passed in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

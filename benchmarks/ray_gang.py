"""A measured basis for fast cell jobs: one long-lived Ray driver placing each job's gang itself,
against Ray's Jobs API (what the Ray backend uses today, one submission per job), on the same head.

Both run the same trivial 2-worker job: a placement group of two 1-CPU bundles (all or nothing),
then one task per bundle that runs `print(os.environ["RANK"])` as a Python process of its own.
- Jobs API: `JobSubmissionClient.submit_job` of a script doing that, polled to the end (as
  `ray job submit` does): a supervisor actor and a driver process start per job.
- One driver: a process that connected once places the gang and runs the tasks, job after job,
  back to back and with a pause between jobs (a person running cells).
- A detached actor: the same gang placed by a named, detached actor (which outlives the driver
  that calls it, as jobs must outlive a restarted service), called job after job with a pause.
This measures Ray only, not the jobs service. Run: `.venv/bin/python benchmarks/ray_gang.py`.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lavahub.config import RayConfig
from services.jobs.backends.ray import RayBackend
from tests.hubclient import free_port

TRIVIAL = 'import os; print(os.environ["RANK"])'
GANG = f"""
import os, subprocess, sys
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

@ray.remote(num_cpus=1, max_retries=0)
def worker(rank):
    env = {{"PATH": os.environ.get("PATH", ""), "RANK": str(rank)}}
    return subprocess.run([sys.executable, "-P", "-c", {TRIVIAL!r}], env=env).returncode

def gang():
    group = placement_group([{{"CPU": 1}}, {{"CPU": 1}}], strategy="PACK")
    ray.get(group.ready())
    try:
        on = lambda i: PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i)
        return max(ray.get([worker.options(scheduling_strategy=on(i)).remote(i) for i in range(2)]))
    finally:
        remove_placement_group(group)

@ray.remote(num_cpus=0)
class Dispatcher:
    def run(self):
        return gang()
"""


def driver(rounds: int, pause: float, actor: bool) -> None:
    """The long-lived driver: connect once, then `rounds` jobs, each timed from start to both exits
    (`actor`: each placed and run by a detached actor the driver calls)."""
    import logging

    import ray

    namespace: dict[str, object] = {}
    exec(GANG, namespace)  # the same code the Jobs API's script runs
    started = time.monotonic()
    ray.init(
        address=os.environ["GANG_ADDRESS"],
        namespace="lavahub-bench",
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    connected = time.monotonic() - started
    run = namespace["gang"]
    if actor:
        dispatcher = namespace["Dispatcher"].options(name="gang", lifetime="detached").remote()  # type: ignore[attr-defined]
        ray.get(dispatcher.run.remote())  # the actor's own start is not a job's cost

        def run() -> int:
            return int(ray.get(dispatcher.run.remote()))

    times = []
    for _ in range(rounds):
        time.sleep(pause)
        start = time.monotonic()
        if run() != 0:  # type: ignore[operator]
            raise SystemExit("a worker failed")
        times.append(time.monotonic() - start)
    print(json.dumps({"connect": connected, "times": times}))


def jobs_api(backend: RayBackend, rounds: int, script: Path) -> list[float]:
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(backend.dashboard_url, headers={"Authorization": f"Bearer {backend.token}"})
    times = []
    for _ in range(rounds):
        start = time.monotonic()
        submission = client.submit_job(entrypoint=f"{sys.executable} {script}")
        while not (status := client.get_job_status(submission)).is_terminal():
            time.sleep(0.1)
        if status != JobStatus.SUCCEEDED:
            raise SystemExit(f"the Jobs API's job {status}: {client.get_job_logs(submission)[-2000:]}")
        times.append(time.monotonic() - start)
    return times


def median(times: list[float]) -> str:
    return f"{statistics.median(times):.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="jobs per way of the one driver")
    parser.add_argument("--api-rounds", type=int, default=5, help="jobs through the Jobs API (slow)")
    parser.add_argument("--pause", type=float, default=1.5, help="seconds between two paced jobs")
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--actor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        return driver(args.rounds, args.pause, args.actor)

    state = Path(tempfile.mkdtemp(prefix="lavahub-gang-"))
    settings = RayConfig(port=free_port(), dashboard_port=free_port(), object_store_memory=128 * 2**20)
    backend = RayBackend(state_dir=str(state), settings=settings)
    try:
        asyncio.run(backend._connect())
        script = state / "gang.py"
        script.write_text(GANG + "\nray.init()\nsys.exit(gang())\n")
        api = jobs_api(backend, args.api_rounds, script)
        env = {
            **os.environ,
            **backend.ray_env(),
            "HOME": os.environ.get("HOME", "/root"),
            "GANG_ADDRESS": f"127.0.0.1:{backend.port}",
        }
        ways = {}
        paced = f"{args.pause:g} s apart"
        for name, pause, actor in (
            ("one driver, back to back", 0.0, False),
            (f"one driver, {paced}", args.pause, False),
            (f"a detached actor, {paced}", args.pause, True),
        ):
            command = [sys.executable, __file__, "--driver", f"--rounds={args.rounds}", f"--pause={pause}"]
            done = subprocess.run(
                command + (["--actor"] if actor else []),
                env=env, capture_output=True, text=True, check=True, timeout=1200,
            )  # fmt: skip
            ways[name] = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        backend.stop_local_head()

    print(f"\n{'2-worker trivial job, warm head':44} {'median':>9} {'p95':>9} {'n':>4}")
    rows = [("Jobs API (one submission per job)", api)]
    rows += [(name, way["times"]) for name, way in ways.items()]
    for what, times in rows:
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        print(f"{what:44} {median(times):>9} {p95:9.3f} {len(times):>4}")
    connect = statistics.median(way["connect"] for way in ways.values())
    print(f"(the driver connected once, in {connect:.2f} s; the Jobs API pays a driver per job)")


if __name__ == "__main__":
    main()

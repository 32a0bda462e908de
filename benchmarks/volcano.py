"""The Volcano backend on a real kube-apiserver: submission throughput, log fan-in, explain latency.

The cluster is the Kubernetes tier's (tests/kubernetes: etcd and kube-apiserver on loopback,
Volcano's CRDs, the tests' Volcano and a kubelet that runs pods as processes); the backend
runs as the jobs service's own identity, with the chart's RBAC.

1. Submission: `--jobs` jobs through `VolcanoBackend.submit` (queue check from its informer,
   render, the Job with the cell inside), 8 at a time, against creating the same rendered
   Volcano Jobs directly with the Kubernetes client, 8 at a time: the median of three rounds
   of each, alternating, each from an empty namespace. Target: --submit-target jobs/s.
2. Log fan-in: one job of 8 workers printing 5,000 timestamped lines each; the added latency of a
   line is when it is in the job's stored log minus when its worker printed it. Target: p95
   <= --fanin-target-s.
3. Explain: with --pending jobs waiting for quota in a small queue (PodGroups, conditions and
   events as Volcano writes them), the time to diagnose and explain one of them.
   Target: p95 <= --explain-target-ms.

Exits 1 when a target is missed, 2 when the API server is not built.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubernetes_asyncio.client import CoreV1Api, CustomObjectsApi  # noqa: E402

from services.jobs.backends.volcano.backend import BATCH, BATCH_VERSION  # noqa: E402
from services.jobs.backends.volcano.render import render  # noqa: E402
from services.jobs.models import JobState  # noqa: E402
from tests.conftest import passable  # noqa: E402
from tests.kubernetes.cluster import KubeCluster, apiserver_binary, grant_jobs_roles  # noqa: E402
from tests.kubernetes.conftest import USERS  # noqa: E402
from tests.kubernetes.test_volcano_backend import Platform, claims_kubelet  # noqa: E402
from tests.kubernetes.volcano import FakeVolcano, create_queue, install_volcano_crds  # noqa: E402

NAMESPACE = "bench"
AT_ONCE = 8
FANIN_CODE = """
import time
for i in range(5000):
    print(f"t={time.time():.6f} line {i}", flush=True)
"""


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.95) - 1)]


async def bounded(calls: list[Any]) -> float:
    """Run the coroutines `AT_ONCE` at a time; the seconds it took."""
    gate = asyncio.Semaphore(AT_ONCE)

    async def one(call: Any) -> None:
        async with gate:
            await call

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return time.perf_counter() - start


async def submission(platform: Platform, count: int, rounds: int = 3) -> tuple[float, float]:
    """(jobs/s through the backend, jobs/s creating the same Jobs directly): the median of
    `rounds` rounds of each, alternating, each from an empty namespace."""
    backend = platform.backend
    assert backend is not None and backend.jobs_informer is not None
    custom = CustomObjectsApi(platform.admin)
    create = custom.create_namespaced_custom_object

    async def emptied() -> None:  # what neither the store nor Volcano knows of goes before the next
        await custom.delete_collection_namespaced_custom_object(
            BATCH, BATCH_VERSION, platform.namespace, "jobs"
        )
        await CoreV1Api(platform.admin).delete_collection_namespaced_config_map(platform.namespace)
        while backend.jobs_informer.objects:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)

    through, direct = [], []
    for _ in range(rounds):
        specs = [platform.spec("pass\n", cpus=0.1) for _ in range(2 * count)]
        bodies = [
            render(
                spec,
                namespace=platform.namespace,
                volcano=backend.volcano,
                settings=backend.settings,
                storage=backend.storage,
            ).job
            for spec in specs[:count]
        ]
        direct.append(
            count
            / await bounded([create(BATCH, BATCH_VERSION, platform.namespace, "jobs", b) for b in bodies])
        )
        await emptied()
        through.append(count / await bounded([backend.submit(spec) for spec in specs[count:]]))
        await emptied()
    return statistics.median(through), statistics.median(direct)


async def fanin(platform: Platform) -> list[float]:
    """Added latency (s) of each line of an 8 x 5,000-line job, from print to the stored log."""
    job = platform.submit(FANIN_CODE, workers=8, cpus=0.1)
    log = platform.logs[job.id]
    seen: dict[str, float] = {}
    read = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        now = time.time()
        for line in log.read(read, limit=1 << 22):
            seen.setdefault(line, now)
            read += 1
        done = platform.job(job.id).state in (JobState.SUCCEEDED, JobState.FAILED)
        if done and len(log) == read:
            break
        await asyncio.sleep(0.05)
    latencies = []
    for line, arrived in seen.items():
        _, _, text = line.partition("] ")
        if text.startswith("t="):
            latencies.append(arrived - float(text.split()[0][2:]))
    if len(latencies) != 8 * 5000:
        raise SystemExit(f"log fan-in: {len(latencies)} of {8 * 5000} lines arrived ({platform.job(job.id)})")
    return latencies


async def explain_latency(platform: Platform, pending: int, runs: int) -> list[float]:
    """Milliseconds to explain one of `pending` jobs waiting for quota."""
    from services.jobs.explain import explain

    backend = platform.backend
    assert backend is not None
    await create_queue(platform.admin, "tight", {"cpu": "1", "memory": "1Gi"})
    jobs = [platform.submit("pass\n", cpus=2, queue="tight") for _ in range(pending)]
    await asyncio.sleep(0)
    deadline = time.monotonic() + 600
    while sum(1 for j in jobs if platform.job(j.id).submitted) < pending:
        assert time.monotonic() < deadline, "the pending jobs were not all submitted"
        await asyncio.sleep(0.5)
    await platform.volcano.settle()  # PodGroups, their Unschedulable conditions and events
    samples = []
    for job in jobs[-runs:]:
        start = time.perf_counter()
        current = platform.job(job.id)
        explain(current, diagnosis=await backend.diagnose(current), ahead=[], failing_lines=[])
        samples.append(1000 * (time.perf_counter() - start))
    return samples


async def run(cluster: KubeCluster, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    async with await cluster.api_client() as admin:
        await CoreV1Api(admin).create_namespace({"metadata": {"name": NAMESPACE}})  # type: ignore[arg-type]
        await install_volcano_crds(admin)
        await grant_jobs_roles(admin, NAMESPACE, "jobs")
        await create_queue(admin, "default", {"cpu": "10000", "memory": "10000Gi"})
        kubelet = claims_kubelet(admin, root)
        node = "node-bench"
        await kubelet.register_node(node, capacity={"cpu": "16", "memory": "64Gi", "pods": "500"})
        volcano = FakeVolcano(admin, NAMESPACE, nodes=[node])
        platform = Platform(NAMESPACE, root, cluster, admin, volcano, kubelet, node)
        results: dict[str, Any] = {}
        await platform.start_service()
        try:
            results["submit"] = await submission(platform, args.jobs)
            async with kubelet.running(NAMESPACE, node), volcano.running():
                results["fanin"] = await fanin(platform)
            results["explain"] = await explain_latency(platform, args.pending, 50)
        finally:
            await platform.stop_service()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs submitted each way (200)")
    parser.add_argument("--submit-target", type=float, default=100.0, help="min jobs/s through the backend")
    parser.add_argument("--fanin-target-s", type=float, default=1.0, help="max p95 added log latency (1 s)")
    parser.add_argument("--pending", type=int, default=1000, help="jobs pending while explaining (1000)")
    parser.add_argument("--explain-target-ms", type=float, default=100.0, help="max p95 explain (100 ms)")
    args = parser.parse_args()
    if apiserver_binary() is None:
        print("kube-apiserver not built: run `make kube-apiserver` first", file=sys.stderr)
        return 2
    with KubeCluster(users=USERS) as cluster, tempfile.TemporaryDirectory(prefix="lavahub-bench-") as tmp:
        results = asyncio.run(run(cluster, passable(Path(tmp)), args))
    through, direct = results["submit"]
    fan, exp = results["fanin"], results["explain"]
    fan_said = f"p95 {p95(fan):.3f} s, median {statistics.median(fan):.3f} s"
    exp_said = f"p95 {p95(exp):.1f} ms, median {statistics.median(exp):.1f} ms"
    checks = {
        "submission": (through >= args.submit_target, f"{through:.0f} jobs/s (direct create: {direct:.0f})"),
        "log fan-in": (p95(fan) <= args.fanin_target_s, fan_said),
        "explain": (p95(exp) <= args.explain_target_ms, exp_said),
    }
    print(f"Volcano backend, real kube-apiserver ({args.jobs} jobs, 8x5000 lines, {args.pending} pending):")
    for name, (ok, said) in checks.items():
        print(f"  {name:12} {said}  {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for ok, _ in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

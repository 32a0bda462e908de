"""Spawn-path overhead of lavahub's KubeSpawner against a plain KubeSpawner, and form rendering.

Both spawners start pods on the same real kube-apiserver (tests/kubernetes: etcd and
kube-apiserver on loopback, a fake kubelet that runs each pod as it appears). The plain
KubeSpawner gets a static configuration equivalent to what lavahub's spawner derives for
the same workspace (image, resources, GPU limit, CephFS volumes, init container,
tolerations, labels), so the difference is lavahub's own work: reading the template
store and the user's projects, validating the options, checking the project quota
against the shared pod reflector, and building the plan. Spawns alternate (plain,
lavahub, ...) so machine drift hits both alike; each is timed from `start()` to the URL.

Then the spawn form for 200 templates, as a user's form load renders it (store read
included). Exits 1 when the median ratio exceeds --target or the form's median exceeds
--form-target-ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
KUBECONFIG = Path(tempfile.mkdtemp(prefix="lavahub-kube-bench-")) / "kubeconfig"
os.environ["KUBECONFIG"] = str(KUBECONFIG)  # before kubernetes_asyncio is imported: KubeSpawner reads it once

from kubespawner import KubeSpawner  # noqa: E402

from lavahub.config import KubernetesConfig, KubernetesStorage  # noqa: E402
from spawner.base import template_store  # noqa: E402
from spawner.kube import KubeWorkspaceSpawner  # noqa: E402
from spawner.projects import Project  # noqa: E402
from spawner.resources import Quota  # noqa: E402
from spawner.templates import template_from_dict  # noqa: E402
from tests.kubernetes.cluster import KubeCluster, apiserver_binary, grant_hub_role  # noqa: E402
from tests.kubernetes.kubelet import FakeKubelet  # noqa: E402

NAMESPACE = "bench"
TEMPLATE = {
    "slug": "pytorch", "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06", "cpus": 2,
    "memory": "8Gi", "gpus": 1, "max_gpus": 2, "max_cpus": 4, "max_memory": "16Gi",
}  # fmt: skip
OPTIONS = {"project": "bench", "template": "pytorch"}


def hub_user(n: int) -> SimpleNamespace:
    project = Project("bench", (f"u{n}",), quota=Quota(gpus=1000))
    group = SimpleNamespace(name="bench", properties=project.to_properties(), users=[])
    return SimpleNamespace(name=f"u{n}", id=n, url=f"/user/u{n}/", admin=False, groups=[group])


def lavahub_spawner(n: int, database_url: str) -> KubeSpawner:
    spawner = KubeWorkspaceSpawner(
        _mock=True, user=hub_user(n), orm_spawner=SimpleNamespace(name="", server=None),
        database_url=database_url, storage=KubernetesStorage(),
        settings=KubernetesConfig(namespace=NAMESPACE),
    )  # fmt: skip
    spawner.user_options = dict(OPTIONS)
    return spawner


def plain_spawner(n: int, equivalent: dict[str, Any]) -> KubeSpawner:
    """A plain KubeSpawner with lavahub's plan for the same workspace as static config."""
    spawner = KubeSpawner(
        _mock=True, user=hub_user(n), orm_spawner=SimpleNamespace(name="", server=None),
        namespace=NAMESPACE, **equivalent,
    )  # fmt: skip
    return spawner


async def timed_start(spawner: KubeSpawner) -> float:
    start = time.perf_counter()
    await asyncio.wait_for(spawner.start(), 60)
    elapsed = time.perf_counter() - start
    await spawner.stop(now=True)
    return elapsed


async def spawns(cluster: KubeCluster, runs: int, database_url: str) -> tuple[list[float], list[float]]:
    async with await cluster.api_client() as admin:
        from kubernetes_asyncio.client import CoreV1Api

        # its stubs want a V1Namespace; the client sends the dict as it is
        await CoreV1Api(admin).create_namespace({"metadata": {"name": NAMESPACE}})  # type: ignore[arg-type]
        await grant_hub_role(admin, NAMESPACE)
        kubelet = FakeKubelet(admin)
        await kubelet.register_node("node-1")
        async with kubelet.running(NAMESPACE, "node-1", "component=singleuser-server"):
            reference = lavahub_spawner(0, database_url)
            await reference.load_user_options()  # the same plan, as static KubeSpawner config
            equivalent = {trait: getattr(reference, trait) for trait in reference._plan.spawner_traits()}
            reference._in_flight.clear()
            await timed_start(lavahub_spawner(10_000, database_url))  # warm both paths (reflectors, client)
            await timed_start(plain_spawner(10_001, equivalent))
            plain, lavahub = [], []
            for n in range(1, runs + 1):
                plain.append(await timed_start(plain_spawner(2 * n, equivalent)))
                lavahub.append(await timed_start(lavahub_spawner(2 * n + 1, database_url)))
            for reflector in list(KubeSpawner.reflectors.values()):
                await reflector.stop()
    return plain, lavahub


async def form_render(database_url: str, count: int, runs: int) -> list[float]:
    store = template_store(database_url)
    store.seed([template_from_dict({**TEMPLATE, "slug": f"t{i:03d}", "display_name": f"Template {i}"})
                for i in range(count)])  # fmt: skip
    spawner = lavahub_spawner(99_999, database_url)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        html = await spawner.get_options_form()
        samples.append(1000 * (time.perf_counter() - start))
    assert html.count('name="template"') >= count, "every template is offered"
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="spawns of each spawner (20)")
    parser.add_argument("--target", type=float, default=1.2, help="max median ratio lavahub/plain (1.2)")
    parser.add_argument("--templates", type=int, default=200, help="templates in the form (200)")
    parser.add_argument("--form-target-ms", type=float, default=50.0, help="max median form render (50 ms)")
    args = parser.parse_args()
    if apiserver_binary() is None:
        print("kube-apiserver not built: run `make kube-apiserver` first", file=sys.stderr)
        return 2
    with KubeCluster(users={"hub": ["lavahub:hub"]}) as cluster, tempfile.TemporaryDirectory() as tmp:
        KUBECONFIG.write_text(cluster.kubeconfig("hub").read_text())
        database_url = f"sqlite:///{Path(tmp) / 'lavahub.sqlite'}"
        template_store(database_url).seed([template_from_dict(TEMPLATE)])
        plain, lavahub = asyncio.run(spawns(cluster, args.runs, database_url))
        form = asyncio.run(form_render(f"sqlite:///{Path(tmp) / 'form.sqlite'}", args.templates, 50))

    p_med, l_med = statistics.median(plain), statistics.median(lavahub)
    ratio = l_med / p_med
    form_med = statistics.median(form)
    spawn_ok, form_ok = ratio <= args.target, form_med <= args.form_target_ms
    print(f"spawn start() -> URL on a real kube-apiserver, {args.runs} spawns each (ms):")
    print(f"  {'':8} {'median':>8} {'p90':>8} {'min':>8}")
    for name, samples in (("plain", plain), ("lavahub", lavahub)):
        ms = sorted(1000 * s for s in samples)
        print(f"  {name:8} {statistics.median(ms):8.1f} {ms[int(0.9 * (len(ms) - 1))]:8.1f} {ms[0]:8.1f}")
    print(f"  ratio (median) {ratio:5.2f}   target <= {args.target:.2f}: {'ok' if spawn_ok else 'FAILED'}")
    verdict = "ok" if form_ok else "FAILED"
    print(
        f"spawn form, {args.templates} templates, 50 renders: "
        f"median {form_med:.1f} ms, max {max(form):.1f} ms"
    )
    print(f"  target <= {args.form_target_ms:.0f} ms: {verdict}")
    return 0 if spawn_ok and form_ok else 1


if __name__ == "__main__":
    sys.exit(main())

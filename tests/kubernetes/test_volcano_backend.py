"""The Volcano backend against a real API server, as the jobs service's own identity (the chart's
jobs Role and ClusterRole only): queues, explanations with numbers, logs that survive pods and
service restarts, cancel by Volcano's own Command, elastic gangs and every framework's wiring.

The tests play Volcano (`volcano.py`) and a kubelet that runs each pod as a process
(`process_kubelet.py`); the conformance suite (`tests/backends/`) covers the rest of the contract.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import jsonschema
import pytest
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException

from lavahub.config import KubernetesConfig, KubernetesStorage
from lavahub.config.jobs import VolcanoConfig
from services.jobs.backends.volcano.backend import VolcanoBackend
from services.jobs.explain import explain
from services.jobs.logs import JobLogs
from services.jobs.models import Job, JobSpec, JobState
from services.jobs.payloads import Payloads
from services.jobs.spec import new_job_id
from services.jobs.store import JobStore
from services.jobs.supervisor import Supervisor
from spawner.projects import Project
from spawner.resources import Resources
from spawner.templates import template_from_dict
from spawner.volumes import kube_volume_plan
from spawner.workspace import WorkspaceRequest
from tests.conftest import passable

from .cluster import KubeCluster, grant_jobs_roles
from .process_kubelet import ProcessKubelet
from .volcano import FakeVolcano, crd_schemas, create_queue, install_volcano_crds

pytestmark = pytest.mark.kubernetes

STORAGE = KubernetesStorage()
ENDED = {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
CLAIMS = (STORAGE.personal_claim, STORAGE.project_claim, STORAGE.global_claim)


@dataclass
class Platform:
    """A jobs service's core (store, logs, supervisor) on the Volcano backend, and the cluster's parts."""

    namespace: str
    root: Path
    cluster: KubeCluster
    admin: ApiClient
    volcano: FakeVolcano
    kubelet: ProcessKubelet
    node: str
    backend: VolcanoBackend | None = None
    supervisor: Supervisor | None = None

    def __post_init__(self) -> None:
        self.store = JobStore(f"sqlite:///{self.root / 'lavahub.sqlite'}")
        self.logs = JobLogs(self.root / "logs")
        self.payloads = Payloads(self.root / "payloads")

    async def start_service(self) -> VolcanoBackend:
        """The backend and supervisor, as a (re)started jobs service makes them."""
        self.backend = VolcanoBackend(
            namespace=self.namespace,
            kubeconfig=str(self.cluster.kubeconfig("jobs")),
            state_dir=str(self.root / "volcano"),
            volcano=VolcanoConfig(ttl_seconds_after_finished=3600),
            settings=KubernetesConfig(),
            storage=STORAGE,
        )
        await self.backend.setup()
        while not self.backend.ready:
            await asyncio.sleep(0.05)
        self.supervisor = Supervisor(self.store, self.backend, self.logs, self.payloads)
        self.supervisor.start()
        return self.backend

    async def stop_service(self) -> None:
        assert self.supervisor is not None and self.backend is not None
        await self.supervisor.stop()
        await self.backend.cleanup()

    def submit(self, code: str, **options: Any) -> Job:
        """A job accepted as the service accepts one (payload, then record): the supervisor submits it."""
        spec = self.spec(code, **options)
        self.payloads.save(spec.id, spec.code, spec.exports)
        return self.store.add(spec)

    def spec(
        self,
        code: str,
        *,
        workers: int = 1,
        cpus: float = 0.5,
        gpus: int = 0,
        project: str = "default",
        queue: str = "default",
        framework: str = "python",
        min_workers: int | None = None,
        exports: bytes | None = None,
    ) -> JobSpec:
        """alice's job spec for `code` on the python template, as the service builds one."""
        job_id = new_job_id()
        home = STORAGE.home_mount
        template = template_from_dict(
            {
                "slug": "python",
                "image": "python:3.11",
                "cpus": cpus,
                "max_cpus": 8,
                "max_gpus": 8,
                "gpus": gpus,
            }
        )
        request = WorkspaceRequest(
            user="alice",
            admin=False,
            project=Project(project, ("alice",), queue=queue),
            template=template,
            resources=Resources(cpus=cpus, memory=0, gpus=gpus),
        )
        return JobSpec(
            id=job_id,
            name="cell",
            user="alice",
            project=project,
            template="python",
            template_version=1,
            image="python:3.11",
            framework=framework,
            workers=workers,
            resources=request.resources,
            timeout=300,
            env={},
            code=code,
            cwd=home,
            job_dir=f"{home}/.lavahub/jobs/{job_id}",
            volumes=kube_volume_plan("alice", project, admin=False, storage=STORAGE),
            queue=queue,
            request=request,
            min_workers=min_workers,
            exports=exports,
        )

    def job(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        assert job is not None
        return job

    async def wait(self, job_id: str, done: Callable[[Job], bool], timeout: float = 60) -> Job:
        deadline = time.monotonic() + timeout
        while not done(job := self.job(job_id)):
            assert time.monotonic() < deadline, f"{job} after {timeout} s"
            await asyncio.sleep(0.1)
        return job

    async def explained(self, job_id: str) -> dict[str, Any]:
        assert self.backend is not None
        job = self.job(job_id)
        return explain(job, diagnosis=await self.backend.diagnose(job), ahead=[], failing_lines=[])

    async def pods(self, job_id: str) -> list[Any]:
        listing = await CoreV1Api(self.admin).list_namespaced_pod(
            self.namespace, label_selector=f"lavahub.io/job-id={job_id}"
        )
        return list(listing.items)


def claims_kubelet(admin: ApiClient, root: Path) -> ProcessKubelet:
    """A process kubelet whose claims are directories below `root`, alice's home as a workspace has it."""
    for claim in CLAIMS:
        (root / "claims" / claim).mkdir(parents=True)
    home = root / "claims" / STORAGE.personal_claim / "users" / "alice"
    home.mkdir(parents=True, mode=0o700)
    os.chown(home, STORAGE.uid, STORAGE.gid)
    return ProcessKubelet(
        admin,
        claims={c: root / "claims" / c for c in CLAIMS},
        programs={"python": sys.executable, "sh": "/bin/sh"},
        workdir=root / "kubelet",
    )


@pytest.fixture
async def platform(
    emulated: KubeCluster, admin_api: ApiClient, namespace: str, tmp_path: Path
) -> AsyncIterator[Platform]:
    await install_volcano_crds(admin_api)
    await grant_jobs_roles(admin_api, namespace, "jobs")
    root = passable(tmp_path)
    kubelet = claims_kubelet(admin_api, root)
    node = f"node-{namespace}"
    await kubelet.register_node(
        node,
        capacity={"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": "2", "pods": "110"},
        labels={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
    )
    volcano = FakeVolcano(admin_api, namespace, nodes=[node])
    platform = Platform(namespace, root, emulated, admin_api, volcano, kubelet, node)
    kubelet_running, volcano_running = kubelet.running(namespace, node), volcano.running()
    await kubelet_running.__aenter__()
    await volcano_running.__aenter__()
    await platform.start_service()
    yield platform
    await within(platform.stop_service(), "stopping the jobs service")
    await within(volcano_running.__aexit__(None, None, None), "stopping the tests' Volcano")
    await within(kubelet_running.__aexit__(None, None, None), "stopping the process kubelet")
    await CoreV1Api(admin_api).delete_node(node)


async def within(step: Any, what: str, timeout: float = 60) -> None:
    """`step`, or a failure naming it and every task's stack: a teardown that hangs says where."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        for other in asyncio.all_tasks():
            other.print_stack(file=sys.stderr)
        raise AssertionError(f"{what} did not end within {timeout} s (every task's stack is on stderr)")
    task.result()


async def test_a_job_goes_to_its_projects_queue_which_must_exist_and_be_open(platform: Platform) -> None:
    missing = platform.submit("print('never')\n", project="vision", queue="vision")
    failed = await platform.wait(missing.id, lambda j: j.state.done)
    assert failed.reason == (
        "could not start: queue vision does not exist on the cluster (the Helm chart makes each project's "
        "queue: an admin adds the project and runs helm upgrade)"
    )
    await create_queue(platform.admin, "vision", {"cpu": "2"}, state="Closed")
    closed = platform.submit("print('never')\n", project="vision", queue="vision")
    failed = await platform.wait(closed.id, lambda j: j.state.done)
    assert (
        failed.reason == "could not start: queue vision is closed: it takes no new jobs (an admin opens it)"
    )
    await create_queue(platform.admin, "vision", {"cpu": "2"}, state="Open")
    job = platform.submit("print('in vision')\n", project="vision", queue="vision")
    done = await platform.wait(job.id, lambda j: j.log_complete)
    assert done.state == JobState.SUCCEEDED and "[worker-0] in vision" in platform.logs[job.id].read()
    custom = CustomObjectsApi(platform.admin)
    vcjob = await custom.get_namespaced_custom_object(
        "batch.volcano.sh", "v1alpha1", platform.namespace, "jobs", done.backend_state["name"]
    )
    assert vcjob["spec"]["queue"] == "vision"
    jsonschema.validate(vcjob["spec"], crd_schemas()["Job"]["properties"]["spec"])


async def test_a_cell_too_large_for_the_job_reaches_every_worker_through_a_config_map_it_owns(
    platform: Platform,
) -> None:
    exports = cloudpickle.dumps({"blob": bytes(range(256)) * 400})  # 100 KiB: over render.INLINE_MAX
    code = "import hashlib, os\nprint(os.environ['RANK'], hashlib.sha256(blob).hexdigest())\n"
    job = platform.submit(code, workers=2, exports=exports)
    done = await platform.wait(job.id, lambda j: j.log_complete)
    assert done.state == JobState.SUCCEEDED, done
    digest = hashlib.sha256(bytes(range(256)) * 400).hexdigest()
    assert sorted(platform.logs[job.id].read()) == [f"[worker-{r}] {r} {digest}" for r in (0, 1)]
    files = await CoreV1Api(platform.admin).read_namespaced_config_map(
        f"{done.backend_state['name']}-files", platform.namespace
    )
    (owner,) = files.metadata.owner_references
    state = done.backend_state
    assert (owner.kind, owner.name, owner.uid) == ("Job", state["name"], state["uid"])


async def test_a_submission_retried_after_a_lost_answer_adopts_its_own_job_and_files(
    platform: Platform,
) -> None:
    """A service whose create's answer was lost submits again: the Job is adopted (not a second one,
    nor an error), and its files are written again."""
    assert platform.backend is not None
    spec = platform.spec("print('once')\n", exports=cloudpickle.dumps({"blob": b"x" * 100_000}))
    first = await platform.backend.submit(spec)
    again = await platform.backend.submit(spec)
    assert (again["name"], again["uid"]) == (first["name"], first["uid"])
    files = await CoreV1Api(platform.admin).read_namespaced_config_map(
        f"{first['name']}-files", platform.namespace
    )
    (owner,) = files.metadata.owner_references
    assert owner.uid == first["uid"]


async def test_a_job_over_its_queues_capability_waits_for_quota_and_says_so_with_numbers(
    platform: Platform,
) -> None:
    await create_queue(platform.admin, "vision", {"cpu": "2"})
    hog = platform.submit(
        "import time\nprint('hog', flush=True)\ntime.sleep(60)\n", cpus=1.5, project="vision", queue="vision"
    )
    await platform.wait(hog.id, lambda j: j.state == JobState.RUNNING)
    waiting = platform.submit("print('later')\n", cpus=1, project="vision", queue="vision")
    await asyncio.sleep(2)
    told = await platform.explained(waiting.id)
    assert platform.job(waiting.id).state == JobState.PENDING
    assert told["reason"] == "WaitingForQuota", told
    assert told["summary"] == (
        "The job is waiting for quota: it needs 1 CPUs in queue vision, whose capability is 2, 1.5 in use "
        "by 1 job; 1st in the queue."
    ), told
    assert platform.supervisor is not None
    await platform.supervisor.cancel(platform.job(hog.id), by="alice")
    done = await platform.wait(waiting.id, lambda j: j.state.done)
    assert done.state == JobState.SUCCEEDED, done


async def test_no_node_with_the_gpus_for_one_worker_and_a_gang_too_large_for_the_nodes(
    platform: Platform,
) -> None:
    big = platform.submit("print('never')\n", gpus=4, cpus=0.1)
    await asyncio.sleep(2)
    told = await platform.explained(big.id)
    assert told["reason"] == "NoNodeFits", told
    assert told["summary"] == (
        "The job is waiting: no node has 4 free GPUs for one worker "
        "(the most free on any node it may use is 2)."
    )
    assert "ask for at most 2 GPUs per worker" in told["suggestions"]
    assert any(
        d.startswith("Volcano says: ") and "Insufficient nvidia.com/gpu" in d for d in told["details"]
    ), told
    gang = platform.submit("print('never')\n", workers=3, gpus=1, cpus=0.1)
    await asyncio.sleep(2)
    told = await platform.explained(gang.id)
    assert told["reason"] == "GangIncomplete", told
    assert told["summary"] == (
        "The job is waiting for all 3 of its workers to be placed at once: "
        "only 2 fit on the cluster's nodes now."
    )
    assert not [p for p in await platform.pods(gang.id) if p.spec.node_name], (
        "no worker of a gang starts alone"
    )


async def test_every_line_survives_a_service_restart_and_the_pods_deletion(platform: Platform) -> None:
    code = "import time\nfor i in range(40):\n    print('line', i, flush=True)\n    time.sleep(0.1)\n"
    job = platform.submit(code, workers=2)
    await platform.wait(job.id, lambda j: len(platform.logs[j.id].read()) >= 10)
    await platform.stop_service()  # the jobs service goes away mid-job...
    await asyncio.sleep(1.5)
    await platform.start_service()  # ...and comes back with the same store and state
    done = await platform.wait(job.id, lambda j: j.log_complete)
    assert done.state == JobState.SUCCEEDED, done
    lines = platform.logs[job.id].read()
    for rank in (0, 1):
        mine = [line for line in lines if line.startswith(f"[worker-{rank}] ")]
        assert mine == [f"[worker-{rank}] line {i}" for i in range(40)], mine
    for pod in await platform.pods(job.id):  # as ttlSecondsAfterFinished does
        await CoreV1Api(platform.admin).delete_namespaced_pod(pod.metadata.name, platform.namespace)
    await asyncio.sleep(1)
    assert platform.logs[job.id].read() == lines


async def test_cancel_is_volcanos_abort_command_and_every_worker_stops(platform: Platform) -> None:
    job = platform.submit(
        "import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.2)\n", workers=2
    )
    await platform.wait(job.id, lambda j: j.state == JobState.RUNNING)
    assert platform.supervisor is not None
    cancelled = await platform.supervisor.cancel(platform.job(job.id), by="alice")
    assert cancelled.state == JobState.CANCELLED
    deadline = time.monotonic() + 30
    while await platform.pods(job.id):
        assert time.monotonic() < deadline, "the workers still run"
        await asyncio.sleep(0.2)
    events = await CoreV1Api(platform.admin).list_namespaced_event(platform.namespace)
    name = platform.job(job.id).backend_state["name"]
    issued = [e for e in events.items if e.reason == "CommandIssued" and e.involved_object.name == name]
    assert issued and "AbortJob" in issued[0].message
    assert not platform.kubelet.pods, "no process of the job is left"


async def test_an_elastic_job_starts_with_its_minimum(platform: Platform) -> None:
    job = platform.submit(
        "import time\nprint('up', flush=True)\ntime.sleep(60)\n", workers=3, min_workers=2, cpus=1
    )
    await platform.wait(job.id, lambda j: j.state == JobState.RUNNING)
    pods = await platform.pods(job.id)
    assert len(pods) == 3 and len([p for p in pods if p.spec.node_name]) == 2  # 2 CPUs: MIN run, 1 waits
    assert platform.supervisor is not None
    await platform.supervisor.cancel(platform.job(job.id), by="alice")


async def test_a_pytorch_job_gets_its_rank_and_master_from_volcanos_plugin(platform: Platform) -> None:
    code = (
        "import os, socket\n"
        "master = os.environ['MASTER_ADDR']\n"
        "print(os.environ['RANK'], os.environ['WORLD_SIZE'], master.split('.')[0].rsplit('-', 2)[1:],"
        " socket.gethostbyname(master), flush=True)\n"
    )
    job = platform.submit(code, workers=2, framework="pytorch")
    done = await platform.wait(job.id, lambda j: j.log_complete)
    assert done.state == JobState.SUCCEEDED, done
    lines = platform.logs[job.id].read()
    assert "[worker-0] 0 2 ['master', '0'] 127.0.0.1" in lines, lines
    assert "[worker-1] 1 2 ['master', '0'] 127.0.0.1" in lines, lines


@pytest.mark.parametrize("framework", ["mpi", "ray"])
async def test_mpi_and_ray_jobs_are_accepted_and_wired_by_volcano(platform: Platform, framework: str) -> None:
    """No mpirun or Ray cluster runs here: what the API server and Volcano's plugins make of them."""
    job = platform.submit("print('hi')\n", workers=2, framework=framework, cpus=0.1)
    state = (await platform.wait(job.id, lambda j: j.submitted)).backend_state
    deadline = time.monotonic() + 20
    while len(pods := await platform.pods(job.id)) < 3:
        assert time.monotonic() < deadline, pods
        await asyncio.sleep(0.2)
    tasks = {p.metadata.labels["volcano.sh/task-spec"]: p for p in pods}
    if framework == "mpi":
        assert set(tasks) == {"mpimaster", "mpiworker"}
        assert tasks["mpimaster"].spec.containers[0].command[:3] == [
            "mpirun",
            "--hostfile",
            "/etc/volcano/mpiworker.host",
        ]
    else:
        assert set(tasks) == {"head", "worker", "driver"}
        assert tasks["head"].spec.containers[0].command[:3] == ["ray", "start", "--head"]
        env = {e.name: e.value for e in tasks["driver"].spec.containers[0].env}
        assert env["RAY_ADDRESS"] == f"{state['name']}-head-0.{state['name']}:6379"
    assert platform.supervisor is not None
    await platform.supervisor.cancel(platform.job(job.id), by="alice")


async def test_the_jobs_identity_has_only_the_charts_rules(platform: Platform) -> None:
    async with await platform.cluster.api_client("jobs") as jobs:
        core = CoreV1Api(jobs)
        for forbidden in (
            core.list_namespaced_secret(platform.namespace),
            core.create_namespaced_pod(
                platform.namespace,
                {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x"}]}},  # type: ignore[arg-type]
            ),
            core.list_namespaced_pod("default"),
        ):
            with pytest.raises(ApiException) as refused:
                await forbidden
            assert refused.value.status == 403

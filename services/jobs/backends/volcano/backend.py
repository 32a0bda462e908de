"""Jobs on Kubernetes as gang-scheduled Volcano Jobs, one per cell, in the project's queue.

A submission becomes a `batch.volcano.sh/v1alpha1` Job rendered by `render`, the
cell inside it: one request. A cell too large for that gets a ConfigMap made
right after the Job and owned by it (so the cluster removes it with the Job;
Volcano makes no pod before its scheduler admits the gang, a round later): both
made or neither. Informers are the backend's view of the cluster:
the jobs' Volcano Jobs and their pods (states come from them, `states`; every
pod's log is followed as it starts, `podlogs`), and the queues, the namespace's
PodGroups, the nodes and the namespace's events, which the queue check and
`diagnose` read without a request. Cancel is Volcano's
own `AbortJob` Command, then deleting the Job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient, CoreV1Api, CustomObjectsApi
from kubernetes_asyncio.client.exceptions import ApiException
from traitlets import Instance, Integer, Unicode

from lavahub.config import KubernetesConfig, KubernetesStorage
from lavahub.config.jobs import VolcanoConfig

from ...models import FRAMEWORKS, Job, JobSpec, JobState, Observation
from ...waiting import within
from ..base import (
    Backend,
    BackendState,
    BackendUnavailable,
    Capabilities,
    Diagnosis,
    JobRefused,
    JobSource,
    ResultUnavailable,
)
from . import diagnose
from .informer import Informer, ignore
from .kubeapi import read_json
from .podlogs import Followers
from .render import API_VERSION, FRAMEWORK_LABEL, JOB_ID_LABEL, MANAGED_BY, RenderError, render
from .states import observe, phase_of

STOPPING = {"Aborting", "Aborted", "Terminating", "Terminated", "Failed"}

# kubernetes_asyncio's stubs type every request body as its model class; its client sends a
# plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

log = logging.getLogger(__name__)

CAPABILITIES = Capabilities(frameworks=FRAMEWORKS, gpus=True, elastic=True)
BATCH, BATCH_VERSION = "batch.volcano.sh", "v1alpha1"
BUS, BUS_VERSION = "bus.volcano.sh", "v1alpha1"
SCHEDULING, SCHEDULING_VERSION = "scheduling.volcano.sh", "v1beta1"
SELECTOR = ",".join(f"{k}={v}" for k, v in MANAGED_BY.items())
SECRET_FILE = "result-secret"
RESYNC_SECONDS = 5.0  # how often jobs without a Volcano Job in the informer are read
COALESCE_SECONDS = 0.02  # changes arriving this close together are observed in one pass
ABORT_WAIT = 10.0  # seconds Volcano is given to take an AbortJob command before the Job is deleted


class VolcanoBackend(Backend):
    capabilities = CAPABILITIES

    namespace = Unicode("lavahub", help="The namespace of the jobs' Volcano Jobs, ConfigMaps and pods.")
    kubeconfig = Unicode(
        None, allow_none=True, help="A kubeconfig to act with; None: the pod's own service account."
    )
    state_dir = Unicode(help="Where the backend keeps log cursors and results (the service's data dir).")
    max_result_bytes = Integer(64 * 2**20, help="The largest result kept from rank 0.")
    volcano = Instance(VolcanoConfig, args=(), help="jobs.volcano of the platform config.")
    settings = Instance(KubernetesConfig, args=(), help="kubernetes of the platform config: placement.")
    storage = Instance(KubernetesStorage, args=(), help="storage.kubernetes: the claims and the uid.")

    @classmethod
    def from_config(cls, platform: Any) -> VolcanoBackend:
        return cls(
            namespace=platform.jobs_namespace,
            kubeconfig=os.environ.get("KUBECONFIG") or None,
            state_dir=str(platform.data_dir / "volcano"),
            max_result_bytes=platform.jobs.max_result_bytes,
            volcano=platform.jobs.volcano,
            settings=platform.kubernetes,
            storage=platform.kubernetes_storage,
        )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.api: ApiClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed: asyncio.Queue[str] = asyncio.Queue()
        self.jobs_informer: Informer | None = None
        self.pods_informer: Informer | None = None
        self.queues_informer: Informer | None = None
        self.groups_informer: Informer | None = None
        self.nodes_informer: Informer | None = None
        self.events_informer: Informer | None = None
        self.followers: Followers | None = None
        self._secret = b""
        self._deletions: set[asyncio.Future[None]] = set()

    # -- connection ---------------------------------------------------------------------------
    async def setup(self) -> None:
        configuration = client.Configuration()
        if self.kubeconfig:
            await config.load_kube_config(config_file=self.kubeconfig, client_configuration=configuration)
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        self.api = ApiClient(configuration)
        folder = Path(self.state_dir)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._secret = _secret(folder / SECRET_FILE)
        self.core, self.custom = CoreV1Api(self.api), CustomObjectsApi(self.api)
        self.followers = Followers(self.core, self.namespace, folder, self.max_result_bytes)
        self.jobs_informer = Informer(
            "Volcano Jobs",
            self.custom.list_namespaced_custom_object,
            self._job_changed,
            group=BATCH,
            version=BATCH_VERSION,
            namespace=self.namespace,
            plural="jobs",
            label_selector=SELECTOR,
        )
        self.pods_informer = Informer(
            "job pods",
            self.core.list_namespaced_pod,
            self._pod_changed,
            index=self._job_id,
            namespace=self.namespace,
            label_selector=SELECTOR,
        )
        custom = self.custom
        self.queues_informer = Informer(
            "Volcano queues",
            custom.list_cluster_custom_object,
            ignore,
            group=SCHEDULING,
            version=SCHEDULING_VERSION,
            plural="queues",
        )
        self.groups_informer = Informer(
            "PodGroups",
            custom.list_namespaced_custom_object,
            ignore,
            group=SCHEDULING,
            version=SCHEDULING_VERSION,
            namespace=self.namespace,
            plural="podgroups",
        )
        self.nodes_informer = Informer("nodes", self.core.list_node, ignore)
        self.events_informer = Informer(
            "events",
            self.core.list_namespaced_event,
            ignore,
            index=lambda event: (event.get("involvedObject") or {}).get("name"),
            namespace=self.namespace,
        )
        informers = (
            self.jobs_informer,
            self.pods_informer,
            self.queues_informer,
            self.groups_informer,
            self.nodes_informer,
            self.events_informer,
        )
        self._tasks = [asyncio.ensure_future(i.run()) for i in informers]

    async def cleanup(self) -> None:
        if self._deletions:  # cancelled jobs still to delete: a few seconds at most
            await asyncio.wait(list(self._deletions), timeout=ABORT_WAIT)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.followers is not None:
            await self.followers.close()
        if self.api is not None:
            await self.api.close()

    @property
    def ready(self) -> bool:
        informers = (self.jobs_informer, self.pods_informer)
        return all(i is not None and i.synced.is_set() for i in informers)

    def result_token(self, job_id: str) -> str:
        """Rank 0 marks its result lines with this; only this backend can make it."""
        return hmac.new(self._secret, job_id.encode(), hashlib.sha256).hexdigest()[:32]

    # -- what the informers report -------------------------------------------------------------
    def _job_id(self, obj: Mapping[str, Any]) -> str | None:
        return ((obj.get("metadata") or {}).get("labels") or {}).get(JOB_ID_LABEL)

    def _job_changed(self, obj: dict[str, Any], deleted: bool) -> None:
        job_id = self._job_id(obj)
        if job_id:
            self._changed.put_nowait(job_id)

    def _pod_changed(self, pod: dict[str, Any], deleted: bool) -> None:
        job_id = self._job_id(pod)
        if not job_id or self.followers is None:
            return
        framework = ((pod.get("metadata") or {}).get("labels") or {}).get(FRAMEWORK_LABEL, "python")
        if not deleted:
            self.followers.pod_seen(job_id, framework, self.result_token(job_id), pod)
        self._changed.put_nowait(job_id)

    def _vcjob(self, job: Job) -> dict[str, Any] | None:
        name = job.backend_state.get("name")
        assert self.jobs_informer is not None
        return self.jobs_informer.objects.get(name) if name else None

    def _pods(self, job_id: str) -> list[dict[str, Any]]:
        return self.pods_informer.indexed(job_id) if self.pods_informer is not None else []

    # -- the seam -------------------------------------------------------------------------------
    async def submit(self, spec: JobSpec) -> BackendState:
        await self._check_queue(spec.queue)
        try:
            rendered = render(
                spec,
                namespace=self.namespace,
                volcano=self.volcano,
                settings=self.settings,
                storage=self.storage,
                result_token=self.result_token(spec.id),
            )
        except RenderError as e:
            raise JobRefused(str(e)) from None
        name = rendered.name
        with _unavailable("create the Volcano Job"):
            try:
                created = await self.custom.create_namespaced_custom_object(
                    BATCH, BATCH_VERSION, self.namespace, "jobs", rendered.job
                )
            except ApiException as e:
                if e.status != 409:
                    raise
                # a retry after a lost answer: the Job is ours if it carries this job's id
                created = await self.custom.get_namespaced_custom_object(
                    BATCH, BATCH_VERSION, self.namespace, "jobs", name
                )
                if self._job_id(created) != spec.id:
                    raise JobRefused(f"a Volcano Job named {name} exists and is not this job's") from None
        uid = created["metadata"]["uid"]
        if rendered.files is not None:  # a cell too large to travel in the Job
            owner = {"apiVersion": API_VERSION, "kind": "Job", "name": name, "uid": uid, "controller": True}
            rendered.files["metadata"]["ownerReferences"] = [owner]
            try:
                with _unavailable("create the job's files"):
                    await self._create_files(rendered.files)
            except BaseException:
                with contextlib.suppress(Exception):  # never a half-created job: no Job without its files
                    await self.custom.delete_namespaced_custom_object(
                        BATCH, BATCH_VERSION, self.namespace, "jobs", name, propagation_policy="Background"
                    )
                raise
        log.info("Job %s is Volcano Job %s/%s in queue %s", spec.id, self.namespace, name, spec.queue)
        return {"name": name, "uid": uid, "queue": spec.queue, "framework": spec.framework}

    async def _create_files(self, files: dict[str, Any]) -> None:
        try:
            await read_json(self.core.create_namespaced_config_map, self.namespace, files)
        except ApiException as e:
            if e.status != 409:
                raise
            await self.core.replace_namespaced_config_map(files["metadata"]["name"], self.namespace, files)  # type: ignore[arg-type]

    def _queue(self, name: str) -> dict[str, Any] | None:
        """The queue as the informer last saw it; None when unknown there."""
        informer = self.queues_informer
        return informer.objects.get(name) if informer is not None else None

    async def _check_queue(self, name: str) -> None:
        """Volcano ties no namespace to a queue: the job's queue is its project's, and must be open.

        From the queues' informer; a queue it does not know (made a moment ago, or the informer
        not synced or not allowed to list) is read from the API server.
        """
        queue = self._queue(name)
        if queue is None:
            with _unavailable("read the queue"):
                try:
                    queue = await self.custom.get_cluster_custom_object(
                        SCHEDULING, SCHEDULING_VERSION, "queues", name
                    )
                except ApiException as e:
                    if e.status == 404:
                        raise JobRefused(
                            f"queue {name} does not exist on the cluster (the Helm chart makes each "
                            "project's queue: an admin adds the project and runs helm upgrade)"
                        ) from None
                    raise
        state = (queue.get("status") or {}).get("state") or "Open"
        if state != "Open":
            raise JobRefused(f"queue {name} is {state.lower()}: it takes no new jobs (an admin opens it)")

    async def cancel(self, job: Job) -> None:
        name, uid = job.backend_state.get("name"), job.backend_state.get("uid")
        if not name:
            return
        target = {"apiVersion": API_VERSION, "kind": "Job", "name": name, "uid": uid, "controller": True}
        command = {
            "apiVersion": f"{BUS}/{BUS_VERSION}",
            "kind": "Command",
            "metadata": {
                "generateName": f"{name}-abortjob-"[:58],
                "namespace": self.namespace,
                "labels": dict(MANAGED_BY),
                "ownerReferences": [target],
            },
            "action": "AbortJob",
            "target": target,
        }
        created: dict[str, Any] | None = None
        try:
            created = await self.custom.create_namespaced_custom_object(
                BUS, BUS_VERSION, self.namespace, "commands", command
            )
        except ApiException as e:
            if e.status == 404:
                return
            log.warning("Job %s: the AbortJob command was not taken (%s); deleting the Job", job.id, e.reason)
        # Volcano aborts the gang (its pods stop, finished ones stay); then the Job goes, and with it
        # the pods, the files and its hold on the queue. Not waited for: cancel answers at once.
        deletion = asyncio.ensure_future(self._delete_after(name, created))
        self._deletions.add(deletion)
        deletion.add_done_callback(self._deletions.discard)

    async def _delete_after(self, name: str, command: Mapping[str, Any] | None) -> None:
        """Delete the Job once Volcano took the command (or after ABORT_WAIT seconds)."""
        deadline = asyncio.get_running_loop().time() + ABORT_WAIT
        while command is not None and asyncio.get_running_loop().time() < deadline:
            try:
                await self.custom.get_namespaced_custom_object(
                    BUS, BUS_VERSION, self.namespace, "commands", command["metadata"]["name"]
                )
            except ApiException:
                break  # gone (taken), or unreadable: delete the Job either way
            except (OSError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.2)
        with contextlib.suppress(ApiException, OSError, aiohttp.ClientError):
            await self.custom.delete_namespaced_custom_object(
                BATCH, BATCH_VERSION, self.namespace, "jobs", name, propagation_policy="Background"
            )

    async def status(self, job: Job) -> Observation:
        vcjob = self._vcjob(job)
        if job.state == JobState.CANCELLED and (vcjob is None or phase_of(vcjob) in STOPPING):
            return Observation(JobState.CANCELLED, reason=job.reason)
        if vcjob is None and job.backend_state.get("name"):
            try:
                vcjob = await self.custom.get_namespaced_custom_object(
                    BATCH, BATCH_VERSION, self.namespace, "jobs", job.backend_state["name"]
                )
            except ApiException as e:
                if e.status != 404:
                    raise
        return observe(job.framework, vcjob, self._pods(job.id))

    async def watch(self, jobs: JobSource) -> AsyncIterator[tuple[str, Observation]]:
        """Observations of the jobs the informers saw change; every RESYNC_SECONDS, also of those
        the informers hold no Volcano Job for (submitted a moment ago, or deleted while the
        service was down: read from the API server)."""
        changed: set[str] = set()
        while True:
            came, first = await within(self._changed.get(), RESYNC_SECONDS)
            if came and first is not None:
                changed.add(first)
                await asyncio.sleep(COALESCE_SECONDS)  # a burst (many jobs made at once) is one pass
                while not self._changed.empty():
                    changed.add(self._changed.get_nowait())
            if not self.ready:
                continue  # what changed meanwhile is observed once the informers are synced
            observing, changed = changed, set()
            for count, job in enumerate(jobs()):
                if job.id not in observing and (came or self._vcjob(job) is not None):
                    continue
                if count % 200 == 199:
                    await asyncio.sleep(0)  # a thousand jobs in one pass leave room for requests
                try:
                    seen = await self.status(job)
                    if job.state == JobState.PENDING and seen.state.done and self._ran(job):
                        yield job.id, Observation(JobState.RUNNING)  # it ran between two looks
                    yield job.id, seen
                except (ApiException, OSError, aiohttp.ClientError) as e:
                    log.warning("Observing job %s: %r", job.id, e)

    def _ran(self, job: Job) -> bool:
        """Whether the job's workers started, though it was never seen running (it was quick)."""
        vcjob = self._vcjob(job) or {}
        status = vcjob.get("status") or {}
        if any(c.get("status") == "Running" for c in status.get("conditions") or []):
            return True
        return bool((status.get("succeeded") or 0) + (status.get("failed") or 0))

    def may_have_output(self, job: Job) -> bool:
        """Lines come only from pods: none while Volcano has made none for it."""
        streams = self.followers.jobs.get(job.id) if self.followers is not None else None
        return bool(self._pods(job.id)) or bool(streams and streams.lines)

    async def logs(self, job: Job, *, final: bool = False) -> list[str]:
        if self.followers is None:
            return []
        return await self.followers.take(job.id, final=final)

    async def result(self, job: Job) -> bytes | None:
        assert self.followers is not None
        path, too_large = self.followers.result_file(job.id)
        if too_large:
            raise ResultUnavailable(
                f"rank 0's result is larger than {self.max_result_bytes} bytes (jobs.max_result_bytes)"
            )
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None

    async def diagnose(self, job: Job) -> Diagnosis:
        vcjob = self._vcjob(job)
        if vcjob is None:
            return Diagnosis()
        nodes = self.nodes_informer
        meta = vcjob["metadata"]
        queue = (vcjob.get("spec") or {}).get("queue") or "default"
        assert self.groups_informer and self.pods_informer and self.events_informer
        facts = diagnose.facts(
            vcjob,
            self._pods(job.id),
            queue=self._queue(queue),
            groups=self.groups_informer.objects.values(),
            nodes=None if nodes is None or nodes.forbidden else list(nodes.objects.values()),
            placed=self.pods_informer.objects.values(),
            events=[
                *self.events_informer.indexed(meta["name"]),
                *self.events_informer.indexed(diagnose.podgroup_name(vcjob)),
            ],
        )
        return diagnose.diagnose(facts, job.resources, job.workers)


@contextlib.contextmanager
def _unavailable(doing: str) -> Any:
    """API failures that may pass (the server away, overloaded, a 5xx) as BackendUnavailable."""
    try:
        yield
    except ApiException as e:
        if e.status in (429,) or (e.status or 0) >= 500:
            raise BackendUnavailable(
                f"the Kubernetes API could not {doing} ({e.status} {e.reason})"
            ) from None
        if e.status == 403:
            raise JobRefused(
                f"the jobs service may not {doing} in namespace (its RBAC role is missing a rule): {e.reason}"
            ) from None
        if e.status == 422 or e.status == 400:
            raise JobRefused(f"the cluster refused the job: {_message(e)}") from None
        raise
    except (OSError, TimeoutError, aiohttp.ClientError) as e:
        raise BackendUnavailable(f"the Kubernetes API cannot be reached to {doing} ({e!r})") from None


def _message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or b"").get("message"))
    except (TypeError, ValueError, AttributeError):
        return str(e.reason)


def _secret(path: Path) -> bytes:
    """The backend's own key for result tokens, made once and kept beside its state."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key)
        return key

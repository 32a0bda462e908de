"""The Kubernetes backend's spawner: one pod per workspace, from the same request as the local one.

A thin KubeSpawner subclass: `load_user_options` (KubeSpawner's documented hook,
the first thing its start does) validates the options, checks the project's
quota against the pods KubeSpawner's shared reflector already sees, and sets
KubeSpawner's own traits from the pure plan in `kube_plan`.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, ClassVar

from kubespawner import KubeSpawner
from traitlets import Bool, Instance, Unicode, default

from lavahub.config import KubernetesConfig, KubernetesStorage

from .base import WorkspaceSpawnerMixin, refusal
from .errors import PublicError
from .kube_plan import HOLDER_ANNOTATION, KubeWorkspacePlan, plan_kube_workspace, pod_resources
from .resources import Resources, check_quota
from .workspace import WorkspaceRequest

FINISHED_PHASES = ("Succeeded", "Failed")
# KubeSpawner expands `{username}`-style fields in these; lavahub's values are literal
EXPANDED_TRAITS = frozenset({
    "volumes", "volume_mounts", "init_containers", "environment", "extra_labels",
    "extra_annotations",
})  # fmt: skip


def _literal(value: Any) -> Any:
    """Escape braces so KubeSpawner's str.format expansion leaves a value as it is."""
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


class KubeWorkspaceSpawner(WorkspaceSpawnerMixin, KubeSpawner):
    storage = Instance(
        KubernetesStorage,
        args=(),
        config=True,
        help="The CephFS claims and ownership of workspace storage. Set from storage.kubernetes.",
    )
    settings = Instance(
        KubernetesConfig,
        args=(),
        config=True,
        help="Namespace, GPU and node-pool labels, tolerations. Set from the platform config's kubernetes.",
    )
    volcano_scheduler = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Schedule workspaces with this Volcano scheduler, in their project's queue "
        "(jobs.volcano.workspaces_in_queues); None: the cluster's default scheduler.",
    )
    check_quota = Bool(
        True,
        config=True,
        help="Refuse a start that would take the project past its quota (render-workspace turns it off).",
    )

    # spawns that passed the quota check and have no pod in the reflector yet, by holder
    _in_flight: ClassVar[dict[str, tuple[str, Resources]]] = {}
    _plan: KubeWorkspacePlan | None = None

    @default("namespace")
    def _lavahub_namespace(self) -> str:
        return self.settings.namespace

    @default("cmd")
    def _lavahub_cmd(self) -> list[str]:
        return ["jupyterhub-singleuser"]

    def plan(self, request: WorkspaceRequest) -> KubeWorkspacePlan:
        return plan_kube_workspace(
            request,
            holder=self.holder,
            storage=self.storage,
            settings=self.settings,
            volcano_scheduler=self.volcano_scheduler,
        )

    async def load_user_options(self) -> None:
        """Validate, check quota, and set this start's traits; refusals reach the user as 400s."""
        self._lavahub_events.clear()
        request = self.resolve_request()
        plan = self.plan(request)
        if self.check_quota:
            await self._start_watching_pods()  # the shared reflector: no extra API calls
            try:
                self._reserve(request)
            except PublicError as e:
                raise refusal(e) from None
        self.apply(plan)
        started = f"Starting template {request.template.display_name} in project {request.project.name}"
        self.emit(10, started)

    def apply(self, plan: KubeWorkspacePlan) -> None:
        """Set this start's traits: the plan's dicts and lists add to what the config set
        (the chart's labels, `c.Spawner.environment`), its scalars replace it."""
        configured = self.__dict__.setdefault("_configured", {})
        for trait, value in plan.spawner_traits().items():
            base = configured.setdefault(trait, copy.deepcopy(getattr(self, trait)))
            if trait in EXPANDED_TRAITS:
                value = _literal(value)  # the config's own `{username}` fields still expand
            if isinstance(value, dict) and isinstance(base, dict):
                value = {**base, **value}
            elif isinstance(value, list) and base:
                value = [*self._sorted_dict_values(base), *value]
            setattr(self, trait, value)
        self._plan = plan

    def start(self) -> asyncio.Future[Any]:
        future = super().start()
        future.add_done_callback(lambda _: self._in_flight.pop(self.holder, None))
        return future

    # -- quota ------------------------------------------------------------------------------
    def project_usage(self, project: str) -> dict[str, Resources]:
        """What the project's other workspaces hold: pods the reflector sees, plus spawns in flight."""
        usage: dict[str, Resources] = {}
        pods: Mapping[str, Any] = self.pod_reflector.pods if self.pod_reflector else {}
        for pod in pods.values():
            meta = pod.get("metadata", {})
            if (meta.get("labels") or {}).get("lavahub.io/project") != project:
                continue
            if pod.get("status", {}).get("phase") in FINISHED_PHASES:
                continue
            held = pod_resources(meta.get("annotations"))
            if held is not None:
                usage[(meta.get("annotations") or {}).get(HOLDER_ANNOTATION, meta.get("name", "?"))] = held
        for holder, (in_project, resources) in self._in_flight.items():
            if in_project == project:
                usage[holder] = resources
        usage.pop(self.holder, None)
        return usage

    def _reserve(self, request: WorkspaceRequest) -> None:
        """Check and record in one step (no await between), so two spawns cannot both take the rest."""
        project = request.project
        check_quota(project.name, project.quota, request.resources, self.project_usage(project.name))
        self._in_flight[self.holder] = (project.name, request.resources)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        if self._plan is not None:
            r = self._plan.request
            state["lavahub"] = {"template": r.template.slug, "template_version": r.template.version}
        return state


async def render_pod(
    request: WorkspaceRequest, *, storage: KubernetesStorage, settings: KubernetesConfig, server: str = ""
) -> dict[str, Any]:
    """The pod the spawner would create for `request`, as YAML-ready JSON; no API call is made.

    KubeSpawner loads a client configuration when it is constructed, so one must
    be loadable (`lavahub render-workspace` names a placeholder when there is none).
    """
    from kubernetes_asyncio.client import ApiClient

    user = SimpleNamespace(name=request.user, id=0, url=f"/user/{request.user}/", admin=request.admin)
    # what the chart's hub looks like from a pod; a real start fills in the token
    hub = SimpleNamespace(
        api_url="http://hub:8081/hub/api", base_url="/hub/", public_host="", url="http://hub:8081/hub/"
    )
    spawner = KubeWorkspaceSpawner(
        _mock=True,
        user=user,
        hub=hub,
        orm_spawner=SimpleNamespace(name=server, server=None),
        storage=storage,
        settings=settings,
        check_quota=False,
    )
    spawner.apply(spawner.plan(request))
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        return api.sanitize_for_serialization(pod)

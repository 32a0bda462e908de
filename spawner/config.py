"""The platform config (`lavahub.yaml`): load, fill embedded defaults, validate.

Invalid config stops start-up with one message naming the key and the problem;
nothing downstream has to second-guess the values it gets from here.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import checks
from .errors import ConfigError
from .names import LABEL_KEY_PATTERN, LABEL_KEY_RULE, SLUG_PATTERN, SLUG_RULE, USER_PATTERN, USER_RULE
from .projects import Project, project_from_dict
from .templates import IMAGE_PATTERN, IMAGE_RULE, Template, template_from_dict

CONFIG_ENV = "LAVAHUB_CONFIG"
ABSOLUTE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
BACKENDS = ("local", "kubernetes")
TOP_KEYS = (
    "backend", "data_dir", "bind", "port", "hub_port", "proxy_api_port", "admins", "auth",
    "projects", "templates", "storage", "database_url", "hub_database_url", "named_servers", "jobs",
    "kubernetes", "templates_service",
)  # fmt: skip
KUBERNETES_KEYS = (
    "namespace", "gpu_product_label", "gpu_node_label", "node_pool_label", "cpu_workspaces_off_gpu_nodes",
    "gpu_tolerations", "init_image", "start_timeout",
)  # fmt: skip
JOBS_KEYS = ("enabled", "port", "max_workers", "max_code_bytes", "default_timeout", "max_timeout", "ray")
RAY_KEYS = ("address", "port", "dashboard_port", "num_cpus", "object_store_memory")
RAY_WORKER_PORTS = (10002, 19999)  # ray start's default --min/max-worker-port
KUBERNETES_STORAGE_KEYS = (
    "personal_claim", "project_claim", "global_claim", "home_mount", "uid", "gid",
)  # fmt: skip

# The embedded default: one machine, two projects, a CPU and a GPU template.
EMBEDDED_DEFAULTS: dict[str, Any] = {
    "admins": ["admin"],
    "projects": {
        "default": {"members": ["admin", "alice", "bob"], "quota": {"gpus": 1, "cpus": 8, "memory": "32Gi"}},
        "vision": {"members": ["admin", "alice"], "quota": {"gpus": 1, "cpus": 8, "memory": "32Gi"}},
    },
    "templates": [
        {
            "slug": "python",
            "display_name": "Python (CPU)",
            "description": "Scientific Python: NumPy, pandas, scikit-learn.",
            "image": "quay.io/jupyter/scipy-notebook:2025-01-06",
            "cpus": 1, "memory": "2Gi", "max_cpus": 4, "max_memory": "8Gi",
        },
        {
            "slug": "pytorch",
            "display_name": "PyTorch (GPU)",
            "description": "PyTorch with CUDA; asks for a GPU when the machine has one.",
            "image": "quay.io/jupyter/pytorch-notebook:cuda12-2025-01-06",
            "cpus": 2, "memory": "4Gi", "gpus": 0, "max_cpus": 4, "max_memory": "16Gi", "max_gpus": 1,
            "projects": ["vision"],
        },
    ],
}  # fmt: skip


@dataclass(frozen=True)
class KubernetesStorage:
    """One RWX (CephFS) claim per volume kind; one claim may serve several kinds."""

    personal_claim: str = "lavahub-home"
    project_claim: str = "lavahub-projects"
    global_claim: str = "lavahub-global"
    home_mount: str = "/home/jovyan"
    uid: int = 1000
    gid: int = 100


DEFAULT_GPU_TOLERATIONS = ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},)


@dataclass(frozen=True)
class KubernetesConfig:
    """Where workspaces run on the cluster and how GPU and node-pool choices become scheduling."""

    namespace: str = "lavahub"
    gpu_product_label: str = "nvidia.com/gpu.product"  # a chosen GPU model selects nodes by this
    gpu_node_label: str = "nvidia.com/gpu.present"  # nodes with this label are GPU nodes
    node_pool_label: str = "lavahub.io/node-pool"  # a project's node_pool selects nodes by this
    cpu_workspaces_off_gpu_nodes: bool = True
    gpu_tolerations: tuple[Mapping[str, Any], ...] = DEFAULT_GPU_TOLERATIONS
    init_image: str = "busybox:1.36"  # creates missing storage directories before the notebook
    start_timeout: int = 300


@dataclass(frozen=True)
class TemplatesServiceConfig:
    """The `templates` service: its port, and who besides hub admins may change templates."""

    port: int = 8083
    admins: tuple[str, ...] = ()  # users granted custom:templates:admin
    admin_groups: tuple[str, ...] = ()  # groups granted custom:templates:admin


@dataclass(frozen=True)
class JobsConfig:
    """The `jobs` service: its port, the limits on a job, and the Ray cluster it uses."""

    enabled: bool = True
    port: int = 8082
    max_workers: int = 8
    max_code_bytes: int = 2**20
    default_timeout: int = 3600
    max_timeout: int = 7 * 24 * 3600
    ray_address: str | None = None  # None: start (or reuse) a local head on loopback
    ray_port: int = 6380
    ray_dashboard_port: int = 8265
    ray_num_cpus: int | None = None  # None: every core of this machine
    ray_object_store_memory: int = 256 * 2**20
    backend: str = "ray"

    @property
    def ray(self) -> Any:  # interim: the config models give jobs.ray its own section
        from types import SimpleNamespace

        return SimpleNamespace(
            address=self.ray_address, port=self.ray_port, dashboard_port=self.ray_dashboard_port,
            num_cpus=self.ray_num_cpus, object_store_memory=self.ray_object_store_memory, start_timeout=180,
        )  # fmt: skip


@dataclass(frozen=True)
class PlatformConfig:
    backend: str
    data_dir: Path
    bind: str
    port: int
    hub_port: int
    proxy_api_port: int
    admins: tuple[str, ...]
    admin_password: str | None
    user_password: str | None
    projects: Mapping[str, Project]
    templates: tuple[Template, ...]
    local_root: Path
    kubernetes_storage: KubernetesStorage
    database_url: str
    hub_database_url: str
    named_servers: int
    jobs: JobsConfig = field(default_factory=JobsConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    templates_service: TemplatesServiceConfig = field(default_factory=TemplatesServiceConfig)
    source: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def users(self) -> list[str]:
        """Everyone who may log in: admins and every project's members."""
        names = set(self.admins)
        for project in self.projects.values():
            names.update(project.members)
        return sorted(names)

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials"


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config to read: `--config`, else $LAVAHUB_CONFIG, else none (embedded defaults)."""
    chosen = explicit or os.environ.get(CONFIG_ENV) or None
    return Path(chosen).expanduser().resolve() if chosen else None


def load_config(path: str | os.PathLike[str] | None = None) -> PlatformConfig:
    """Read and validate the platform config; raise ConfigError with the key that is wrong."""
    source = config_path(path)
    raw: Any = {}
    if source is not None:
        try:
            text = source.read_text()
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except OSError as e:
            raise ConfigError(f"config file {source} cannot be read: {e.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or "not valid YAML"
            raise ConfigError(f"{source}: not valid YAML{at}: {problem}") from None
    try:
        return parse_config(raw, source=source)
    except ConfigError as e:
        if source is not None:
            raise ConfigError(f"{source.name}: {e.message}", hint=e.hint, field=e.field) from None
        raise


def parse_config(raw: Any, *, source: Path | None = None) -> PlatformConfig:
    raw = checks.mapping(raw, "config")
    checks.no_unknown_keys(raw, TOP_KEYS, "")
    base = source.parent if source else Path.cwd()
    get = lambda key: raw.get(key, EMBEDDED_DEFAULTS.get(key))  # noqa: E731

    backend = checks.string(raw.get("backend", "local"), "backend")
    if backend not in BACKENDS:
        raise checks.fail("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")

    default_data = Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")) / "lavahub"
    data_dir = _path(raw.get("data_dir", str(default_data)), "data_dir", base)

    bind = checks.string(raw.get("bind", "127.0.0.1"), "bind")
    if backend == "local" and not _is_loopback(bind):
        raise ConfigError(
            f"bind: the local backend listens on loopback only, got {bind!r}",
            hint="use 127.0.0.1 (or ::1); serve remote users with the kubernetes backend",
            field="bind",
        )
    port = _port(raw.get("port", 8000), "port")
    hub_port = _port(raw.get("hub_port", 8081), "hub_port")
    proxy_api_port = _port(raw.get("proxy_api_port", 8001), "proxy_api_port")
    if len({port, hub_port, proxy_api_port}) != 3:
        raise ConfigError("port, hub_port and proxy_api_port must be three different ports", field="port")

    admins = checks.string_list(get("admins"), "admins", pattern=USER_PATTERN, rule=USER_RULE)

    auth = checks.mapping(raw.get("auth"), "auth")
    checks.no_unknown_keys(auth, ("admin_password", "user_password"), "auth")
    admin_password = _password(auth.get("admin_password"), "auth.admin_password", 32)
    user_password = _password(auth.get("user_password"), "auth.user_password", 8)
    if admin_password and admin_password == user_password:
        raise ConfigError(
            "auth.user_password: must differ from auth.admin_password", field="auth.user_password"
        )

    projects_raw = checks.mapping(get("projects"), "projects")
    projects = {
        name: project_from_dict(name, spec, checks.where("projects", name))
        for name, spec in projects_raw.items()
    }
    if not projects:
        raise ConfigError("projects: at least one project is needed; every workspace belongs to one")

    templates_raw = raw.get("templates")
    if templates_raw is None:
        # the embedded templates, with project restrictions only to projects this config has
        templates_raw = [
            {**t, "projects": [p for p in t.get("projects", []) if p in projects]}
            for t in EMBEDDED_DEFAULTS["templates"]
        ]
    if not isinstance(templates_raw, list) or not templates_raw:
        raise ConfigError("templates: must be a non-empty list of templates", field="templates")
    templates = tuple(
        template_from_dict(t, checks.where("templates", i), known_projects=set(projects))
        for i, t in enumerate(templates_raw)
    )
    seen: set[str] = set()
    for i, template in enumerate(templates):
        if template.slug in seen:
            raise checks.fail(
                checks.where(checks.where("templates", i), "slug"), f"{template.slug!r} is used twice"
            )
        seen.add(template.slug)

    storage = checks.mapping(raw.get("storage"), "storage")
    checks.no_unknown_keys(storage, BACKENDS, "storage")
    local = checks.mapping(storage.get("local"), "storage.local")
    checks.no_unknown_keys(local, ("root",), "storage.local")
    local_root = _path(local.get("root", str(data_dir)), "storage.local.root", base)
    kube = checks.mapping(storage.get("kubernetes"), "storage.kubernetes")
    checks.no_unknown_keys(kube, KUBERNETES_STORAGE_KEYS, "storage.kubernetes")
    kubernetes_storage = KubernetesStorage(**{
        key: (checks.whole(value, f"storage.kubernetes.{key}") if key in ("uid", "gid")
              else checks.string(value, f"storage.kubernetes.{key}", pattern=ABSOLUTE_PATH,
                                 rule="an absolute path of letters, digits and . _ - /")
              if key == "home_mount"
              else checks.string(value, f"storage.kubernetes.{key}", pattern=SLUG_PATTERN, rule=SLUG_RULE))
        for key, value in kube.items()
    })  # fmt: skip

    database_url = checks.string(
        raw.get("database_url", f"sqlite:///{data_dir / 'lavahub.sqlite'}"), "database_url"
    )
    hub_database_url = checks.string(
        raw.get("hub_database_url", f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"), "hub_database_url"
    )
    named_servers = checks.whole(raw.get("named_servers", 3), "named_servers")
    jobs = _jobs(raw.get("jobs"))
    if jobs.port in (port, hub_port, proxy_api_port):
        raise ConfigError("jobs.port: must differ from port, hub_port and proxy_api_port", field="jobs.port")

    kubernetes = _kubernetes(raw.get("kubernetes"))
    templates_service = _templates_service(raw.get("templates_service"))
    if templates_service.port in (port, hub_port, proxy_api_port, jobs.port):
        raise ConfigError(
            "templates_service.port: must differ from port, hub_port, proxy_api_port and jobs.port",
            field="templates_service.port",
        )

    return PlatformConfig(
        backend=backend, data_dir=data_dir, bind=bind, port=port, hub_port=hub_port,
        proxy_api_port=proxy_api_port, admins=tuple(admins), admin_password=admin_password,
        user_password=user_password, projects=projects, templates=templates,
        local_root=local_root, kubernetes_storage=kubernetes_storage, database_url=database_url,
        hub_database_url=hub_database_url, named_servers=named_servers, jobs=jobs, kubernetes=kubernetes,
        templates_service=templates_service, source=source,
    )  # fmt: skip


def _jobs(value: Any) -> JobsConfig:
    jobs = checks.mapping(value, "jobs")
    checks.no_unknown_keys(jobs, JOBS_KEYS, "jobs")
    ray = checks.mapping(jobs.get("ray"), "jobs.ray")
    checks.no_unknown_keys(ray, RAY_KEYS, "jobs.ray")
    default = JobsConfig()
    address = ray.get("address")
    num_cpus = ray.get("num_cpus")
    config = JobsConfig(
        enabled=checks.boolean(jobs.get("enabled", True), "jobs.enabled"),
        port=_port(jobs.get("port", default.port), "jobs.port"),
        max_workers=checks.whole(jobs.get("max_workers", default.max_workers), "jobs.max_workers", minimum=1),
        max_code_bytes=checks.whole(
            jobs.get("max_code_bytes", default.max_code_bytes), "jobs.max_code_bytes", minimum=1
        ),
        default_timeout=checks.whole(
            jobs.get("default_timeout", default.default_timeout), "jobs.default_timeout", minimum=1
        ),
        max_timeout=checks.whole(jobs.get("max_timeout", default.max_timeout), "jobs.max_timeout", minimum=1),
        ray_address=None if address is None else checks.string(address, "jobs.ray.address"),
        ray_port=_port(ray.get("port", default.ray_port), "jobs.ray.port"),
        ray_dashboard_port=_port(
            ray.get("dashboard_port", default.ray_dashboard_port), "jobs.ray.dashboard_port"
        ),
        ray_num_cpus=None if num_cpus is None else checks.whole(num_cpus, "jobs.ray.num_cpus", minimum=1),
        ray_object_store_memory=checks.memory(
            ray.get("object_store_memory", default.ray_object_store_memory), "jobs.ray.object_store_memory"
        ),
    )
    for key, port in (("port", config.ray_port), ("dashboard_port", config.ray_dashboard_port)):
        if RAY_WORKER_PORTS[0] <= port <= RAY_WORKER_PORTS[1]:
            raise ConfigError(
                f"jobs.ray.{key}: {port} is in the range Ray keeps for its workers "
                f"({RAY_WORKER_PORTS[0]}-{RAY_WORKER_PORTS[1]})",
                hint="pick a port outside it, such as 6380 or 8265",
                field=f"jobs.ray.{key}",
            )
    if config.default_timeout > config.max_timeout:
        raise ConfigError(
            "jobs.default_timeout: must not exceed jobs.max_timeout", field="jobs.default_timeout"
        )
    return config


def _templates_service(value: Any) -> TemplatesServiceConfig:
    raw = checks.mapping(value, "templates_service")
    checks.no_unknown_keys(raw, ("port", "admins", "admin_groups"), "templates_service")
    return TemplatesServiceConfig(
        port=_port(raw.get("port", TemplatesServiceConfig.port), "templates_service.port"),
        admins=tuple(checks.string_list(
            raw.get("admins"), "templates_service.admins", pattern=USER_PATTERN, rule=USER_RULE
        )),
        admin_groups=tuple(checks.string_list(
            raw.get("admin_groups"), "templates_service.admin_groups", pattern=SLUG_PATTERN, rule=SLUG_RULE
        )),
    )  # fmt: skip


def _kubernetes(value: Any) -> KubernetesConfig:
    raw = checks.mapping(value, "kubernetes")
    checks.no_unknown_keys(raw, KUBERNETES_KEYS, "kubernetes")
    default = KubernetesConfig()
    at = lambda key: f"kubernetes.{key}"  # noqa: E731
    label = lambda key: checks.string(  # noqa: E731
        raw.get(key, getattr(default, key)), at(key), pattern=LABEL_KEY_PATTERN, rule=LABEL_KEY_RULE
    )
    tolerations = raw.get("gpu_tolerations", list(default.gpu_tolerations))
    if not isinstance(tolerations, list):
        raise checks.fail(at("gpu_tolerations"), "must be a list of Kubernetes tolerations")
    return KubernetesConfig(
        namespace=checks.string(
            raw.get("namespace", default.namespace), at("namespace"), pattern=SLUG_PATTERN, rule=SLUG_RULE
        ),
        gpu_product_label=label("gpu_product_label"),
        gpu_node_label=label("gpu_node_label"),
        node_pool_label=label("node_pool_label"),
        cpu_workspaces_off_gpu_nodes=checks.boolean(
            raw.get("cpu_workspaces_off_gpu_nodes", True), at("cpu_workspaces_off_gpu_nodes")
        ),
        gpu_tolerations=tuple(
            dict(checks.mapping(t, checks.where(at("gpu_tolerations"), i))) for i, t in enumerate(tolerations)
        ),
        init_image=checks.string(
            raw.get("init_image", default.init_image),
            at("init_image"),
            pattern=IMAGE_PATTERN,
            rule=IMAGE_RULE,
        ),
        start_timeout=checks.whole(
            raw.get("start_timeout", default.start_timeout), at("start_timeout"), minimum=1
        ),
    )


def _path(value: Any, key: str, base: Path) -> Path:
    path = Path(checks.string(value, key)).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _port(value: Any, key: str) -> int:
    port = checks.whole(value, key, minimum=1)
    if port > 65535:
        raise checks.fail(key, f"must be a TCP port (1-65535), got {port}")
    return port


def _password(value: Any, key: str, minimum: int) -> str | None:
    if value is None:
        return None
    password = checks.string(value, key)
    if len(password) < minimum:
        raise ConfigError(
            f"{key}: must be at least {minimum} characters, got {len(password)}",
            hint="or leave it out and lavahub generates a strong one on first start",
            field=key,
        )
    return password


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

"""The platform config as a whole (`lavahub.yaml`): its top-level keys and the embedded defaults.

Projects and templates are validated by spawner's own `project_from_dict` and
`template_from_dict` (the hub, the store and the services use them too); this
model only says where they sit in the config and what the embedded ones are.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, ValidationInfo, WithJsonSchema, field_validator, model_validator

from spawner import checks
from spawner.errors import ConfigError
from spawner.names import SLUG_PATTERN
from spawner.projects import PROJECT_KEYS, Project, project_from_dict
from spawner.templates import FIELDS as TEMPLATE_KEYS
from spawner.templates import Template, template_from_dict

from .accounts import AccountsConfig
from .auth import AuthConfig
from .fields import (
    FilePath,
    Flag,
    OptionalText,
    Port,
    Positive,
    Section,
    Text,
    UserName,
    Whole,
    refuse,
    whole_lines,
)
from .jobs import JobsConfig
from .kubernetes import KubernetesConfig
from .services import CullerConfig, TemplatesServiceConfig
from .storage import KubernetesStorage, StorageConfig

# The embedded default: one machine, two projects, a CPU and a GPU template. The images are
# lavahub's own (images/base, images/pytorch), tagged with lavahub's version.
EMBEDDED_PROJECTS: dict[str, Any] = {
    "default": {"members": ["admin", "alice", "bob"], "quota": {"gpus": 1, "cpus": 8, "memory": "32Gi"}},
    "vision": {"members": ["admin", "alice"], "quota": {"gpus": 1, "cpus": 8, "memory": "32Gi"}},
}
EMBEDDED_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "slug": "python",
        "display_name": "Python (CPU)",
        "description": "Scientific Python: NumPy, pandas, scikit-learn.",
        "image": "lavahub/base:0.1.0",
        "cpus": 1, "memory": "2Gi", "max_cpus": 4, "max_memory": "8Gi",
    },
    {
        "slug": "pytorch",
        "display_name": "PyTorch (GPU)",
        "description": "PyTorch with CUDA; asks for a GPU when the machine has one.",
        "image": "lavahub/pytorch:0.1.0",
        "cpus": 2, "memory": "4Gi", "gpus": 0, "max_cpus": 4, "max_memory": "16Gi", "max_gpus": 1,
        "projects": ["vision"],
    },
)  # fmt: skip


def _embedded_templates(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The embedded templates, restricted only to projects this config has."""
    projects = data.get("projects") or {}
    return [
        {**t, "projects": [p for p in t.get("projects", []) if p in projects]} for t in EMBEDDED_TEMPLATES
    ]


def _default_data_dir() -> str:
    """/var/lib/lavahub for root (users' accounts must reach their directories, and root's home is
    closed to them), else $XDG_DATA_HOME/lavahub."""
    if os.geteuid() == 0 and "XDG_DATA_HOME" not in os.environ:
        return "/var/lib/lavahub"
    return str(Path(os.environ.get("XDG_DATA_HOME", "~/.local/share")) / "lavahub")


def _database(env: str, name: str) -> Any:
    """$env (where a deployment keeps the URL in a secret: the Helm chart's PostgreSQL), else a
    SQLite file in data_dir."""

    def default(data: dict[str, Any]) -> str | None:
        if os.environ.get(env):
            return os.environ[env]
        return f"sqlite:///{data['data_dir'] / name}" if "data_dir" in data else None

    return default


# JSON Schema of what spawner's record validators accept (their own lists of keys).
PROJECTS_SCHEMA = {
    "type": "object",
    "propertyNames": {"pattern": SLUG_PATTERN.pattern},
    "additionalProperties": {"type": "object", "propertyNames": {"enum": list(PROJECT_KEYS)}},
}
TEMPLATES_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["slug", "image"],
        "propertyNames": {"enum": list(TEMPLATE_KEYS)},
    },
}


class PlatformConfig(Section):
    """The platform config. Every key is optional; without a file lavahub runs the embedded defaults."""

    backend: Literal["local", "kubernetes"] = Field(
        "local",
        description="local: JupyterLab processes on this machine, directories for volumes. "
        "kubernetes: pods from the lavahub KubeSpawner, CephFS claims for volumes.",
    )
    data_dir: FilePath = Field(
        default_factory=_default_data_dir,
        validate_default=True,
        description="Where the hub keeps its databases, credentials and (local backend) the volumes. "
        "Relative paths are relative to the config file. Default: /var/lib/lavahub when run as "
        "root, else $XDG_DATA_HOME/lavahub (~/.local/share/lavahub).",
    )
    bind: Text = Field(
        "127.0.0.1", description="The address users reach. The local backend listens on loopback only."
    )
    port: Port = Field(8000, description="The port users reach (the proxy's).")
    hub_port: Port = Field(8081, description="The hub's API port (loopback).")
    proxy_api_port: Port = Field(8001, description="The proxy's API port (loopback).")
    admins: tuple[UserName, ...] = Field(
        ("admin",), description="These users administer the hub (and may log in, as project members may)."
    )
    auth: AuthConfig = Field(
        default_factory=AuthConfig, description="How users log in: auth.type and its settings."
    )
    projects: Annotated[Mapping[str, Project], WithJsonSchema(PROJECTS_SCHEMA)] = Field(
        default_factory=lambda: EMBEDDED_PROJECTS,
        validate_default=True,
        description="Projects (JupyterHub groups) by name: members (seeded on start), quota "
        "(gpus, cpus, memory), queue (Volcano) and node_pool. At least one.",
    )
    templates: Annotated[tuple[Template, ...], WithJsonSchema(TEMPLATES_SCHEMA)] = Field(
        default_factory=_embedded_templates,
        validate_default=True,
        description="Image templates, seeded into the template store on first start (a template an "
        "admin later changes in the store is never overwritten from here).",
    )
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Storage per backend.")
    accounts: AccountsConfig = Field(
        default_factory=AccountsConfig,
        description="The local backend: an OS account per user and a group per project (when root).",
    )
    database_url: Text = Field(
        default_factory=_database("LAVAHUB_DATABASE_URL", "lavahub.sqlite"),
        description="lavahub's database (templates, passwords, holdings), a SQLAlchemy URL. Default: "
        "$LAVAHUB_DATABASE_URL, else SQLite in data_dir.",
    )
    hub_database_url: Text = Field(
        default_factory=_database("LAVAHUB_HUB_DATABASE_URL", "jupyterhub.sqlite"),
        description="JupyterHub's database, a SQLAlchemy URL. Default: $LAVAHUB_HUB_DATABASE_URL, "
        "else SQLite in data_dir.",
    )
    named_servers: Whole = Field(
        3, description="How many named workspaces a user may have besides the default one."
    )
    start_timeout: Positive = Field(
        300, description="Seconds a workspace (a local JupyterLab or a pod) may take to start."
    )
    jobs: JobsConfig = Field(default_factory=JobsConfig, description="The jobs service (cells as jobs).")
    kubernetes: KubernetesConfig = Field(
        default_factory=KubernetesConfig, description="The kubernetes backend's placement of workspaces."
    )
    templates_service: TemplatesServiceConfig = Field(
        default_factory=TemplatesServiceConfig, description="The templates service (catalogue API)."
    )
    culler: CullerConfig = Field(
        default_factory=CullerConfig, description="Stopping idle workspaces (jupyterhub-idle-culler)."
    )
    # JupyterHub's security model (docs/security.md): what keeps user servers apart in the browser
    subdomain_host: OptionalText = Field(
        None,
        description="Serve every user server on its own origin, <user>.<host> (JupyterHub's "
        "subdomain_host), e.g. https://hub.example.org: the only setting that keeps one user's "
        "pages from scripting another's server and the services on the hub's origin. Needs "
        "wildcard DNS (and a wildcard certificate). https unless the host is localhost; the local "
        "backend takes only http://localhost:<port> (browsers resolve *.localhost to loopback).",
    )
    disable_user_config: Flag = Field(
        True,
        description="Ignore the Jupyter config in users' home directories (~/.jupyter) when "
        "their servers start (JupyterHub's Spawner.disable_user_config).",
    )

    _source: Path | None = PrivateAttr(None)

    @field_validator("projects", mode="plain")
    @classmethod
    def _projects(cls, value: Any) -> dict[str, Project]:
        with whole_lines():
            projects = {
                name: project_from_dict(name, spec, checks.where("projects", name))
                for name, spec in checks.mapping(value, "projects").items()
            }
            if not projects:
                raise ConfigError("projects: at least one project is needed; every workspace belongs to one")
        return projects

    @field_validator("templates", mode="plain")
    @classmethod
    def _templates(cls, value: Any, info: ValidationInfo) -> tuple[Template, ...]:
        known = set(info.data.get("projects") or ())
        with whole_lines():
            if not isinstance(value, list | tuple) or not value:
                raise ConfigError("templates: must be a non-empty list of templates", field="templates")
            templates = tuple(
                template_from_dict(t, checks.where("templates", i), known_projects=known)
                for i, t in enumerate(value)
            )
        slugs = [t.slug for t in templates]
        for i, slug in enumerate(slugs):
            if slug in slugs[:i]:
                raise refuse(f"{checks.where('templates', i)}.slug: {slug!r} is used twice", line=True)
        return templates

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        if self.auth.type == "shared" and (self.backend == "kubernetes" or not is_loopback(self.bind)):
            where = "the kubernetes backend" if self.backend == "kubernetes" else f"bind {self.bind}"
            raise refuse(
                f"shared passwords let any user log in as any other; refused with {where}",
                at="auth.type",
                hint="use local (a password per user), oauth or pam",
            )
        if self.jobs.backend == "volcano" and self.backend != "kubernetes":
            raise refuse(
                "Volcano runs jobs on a Kubernetes cluster; this platform's backend is local",
                at="jobs.backend",
                hint="use ray (a local Ray head) on one machine, or set backend: kubernetes",
            )
        if self.backend == "local" and not is_loopback(self.bind):
            raise refuse(
                f"the local backend listens on loopback only, got {self.bind!r}",
                at="bind",
                hint="use 127.0.0.1 (or ::1); serve remote users with the kubernetes backend",
            )
        if self.accounts.mode == "on" and (self.backend != "local" or os.geteuid() != 0):
            why = "the kubernetes backend" if self.backend != "local" else "lavahub not running as root"
            raise refuse(
                f"OS accounts per user need the local backend run as root; refused with {why}",
                at="accounts.mode",
                hint="use auto (accounts when root) or off",
            )
        hub_ports = (self.port, self.hub_port, self.proxy_api_port)
        if len(set(hub_ports)) != 3:
            raise refuse("port, hub_port and proxy_api_port must be three different ports", line=True)
        if self.jobs.port in hub_ports:
            raise refuse("must differ from port, hub_port and proxy_api_port", at="jobs.port")
        if self.templates_service.port in (*hub_ports, self.jobs.port):
            raise refuse(
                "must differ from port, hub_port, proxy_api_port and jobs.port", at="templates_service.port"
            )
        former = self.kubernetes.start_timeout
        if former is not None and former != self.start_timeout:
            if "start_timeout" in self.model_fields_set:
                raise refuse(
                    "is start_timeout under its former name; give only one", at="kubernetes.start_timeout"
                )
            # the one value both backends use; the model is frozen, so set it the way pydantic does
            object.__setattr__(self, "start_timeout", former)
        return self

    @field_validator("subdomain_host")
    @classmethod
    def _subdomain_host(cls, value: str | None) -> str | None:
        return None if value is None else subdomain_origin(value)

    @model_validator(mode="after")
    def _subdomain_host_reachable(self) -> PlatformConfig:
        if self.backend == "local" and self.subdomain_host is not None:
            local = f"http://localhost:{self.port}"
            if self.subdomain_host != local:
                raise refuse(
                    f"the local backend serves user servers on loopback only, got {self.subdomain_host!r}",
                    at="subdomain_host",
                    hint=f"use {local}: users' servers are then at http://<user>.localhost:{self.port}",
                )
        return self

    # -- what the rest of the tree reads ------------------------------------------------
    @property
    def source(self) -> Path | None:
        """The file this config was read from; None for the embedded defaults."""
        return self._source

    @property
    def admin_password(self) -> str | None:
        return self.auth.admin_password

    @property
    def user_password(self) -> str | None:
        return self.auth.user_password

    @property
    def local_root(self) -> Path:
        return self.storage.local.root or self.data_dir

    @property
    def job_logs_dir(self) -> Path:
        """Where the jobs service keeps each job's log: `jobs.logs_dir`, else `<data_dir>/jobs`."""
        return self.jobs.logs_dir or self.data_dir / "jobs"

    @property
    def jobs_namespace(self) -> str:
        """Where Volcano jobs and their pods live: jobs.volcano.namespace, else the workspaces'."""
        return self.jobs.volcano.namespace or self.kubernetes.namespace

    @property
    def jobs_off(self) -> str | None:
        """Why this platform runs no jobs, if it runs none."""
        if not self.jobs.enabled:
            return "jobs.enabled is false"
        if self.backend == "kubernetes" and self.jobs.backend == "ray" and not self.jobs.ray.address:
            # a local Ray head would run users' cells in the hub pod, beside its token and database
            return (
                "on the kubernetes backend jobs need an external Ray cluster (jobs.ray.address): "
                "no user code runs in the hub's pod"
            )
        return None

    @property
    def os_accounts(self) -> bool:
        """Whether each user's processes run as their own OS account (`accounts.mode`)."""
        if self.accounts.mode == "off" or self.backend != "local":
            return False
        return self.accounts.mode == "on" or os.geteuid() == 0

    @property
    def kubernetes_storage(self) -> KubernetesStorage:
        return self.storage.kubernetes

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


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 in brackets or not) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def subdomain_origin(value: str) -> str:
    """`value` as an origin for JupyterHub's subdomain_host: scheme://host[:port], a DNS name."""
    url = urlsplit(value.strip())
    try:
        port = url.port
    except ValueError:
        port = -1
    host = url.hostname or ""
    if (
        url.scheme not in ("http", "https")
        or url.path not in ("", "/")
        or url.query
        or url.fragment
        or url.username is not None
        or port == -1
        or not all(_DNS_LABEL.fullmatch(label) for label in host.split("."))
        or host.replace(".", "").isdigit()
    ):
        raise refuse(
            f"must be an origin such as https://hub.example.org (scheme, DNS name, optional port), "
            f"got {value!r}"
        )
    if url.scheme == "http" and host != "localhost":
        raise refuse(f"must use https (user servers share cookies with their origin), got {value!r}")
    return f"{url.scheme}://{host}" + (f":{port}" if port is not None else "")

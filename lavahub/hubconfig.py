"""The JupyterHub configuration of a lavahub platform, derived from its platform config.

`jupyterhub_config.py` calls `configure` and nothing else: nothing here is a
setting of its own, everything follows from the platform config.
"""

from __future__ import annotations

import html
import os
import sys
from typing import Any

from traitlets.config import Config

from spawner.base import template_store

from .auth import oidc
from .auth.local import PAGE as CHANGE_PASSWORD_PAGE
from .auth.local import LocalPasswordAuthenticator
from .auth.oidc import OIDCAuthenticator
from .config import PlatformConfig
from .config.platform import is_loopback
from .credentials import ensure_credentials
from .local_setup import single_account_notice
from .paths import proxy_command

# What the hub passes on to its services from its own environment.
SERVICE_ENV = (
    "LAVAHUB_CONFIG",
    "HOME",
    "XDG_DATA_HOME",
    "RAY_AUTH_TOKEN",
    "LAVAHUB_PROXY_COMMAND",
    "LAVAHUB_DATABASE_URL",
    "LAVAHUB_HUB_DATABASE_URL",
)
# The proxy's API when the proxy runs on its own (the Helm chart's proxy pod): the hub then
# only configures it, with the token in CONFIGPROXY_AUTH_TOKEN.
PROXY_API_ENV = "LAVAHUB_PROXY_API_URL"
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
LOCAL_PAGES = CHANGE_PASSWORD_PAGE.parent  # lavahub/auth/html: page.html extends the hub's own


def configure(c: Config, platform: PlatformConfig) -> None:
    """Set `c` for this platform. It also creates the data dir, the shared passwords (`auth.type:
    shared`, first start) and the template store's seed, as the hub needs them before it starts.
    (`lavahub up` gives `local` users their passwords: it shows them to the operator.)"""
    platform.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    # --- Network: users reach the proxy; the hub and the proxy's API stay on loopback ---
    c.JupyterHub.bind_url = f"http://{platform.bind}:{platform.port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = platform.hub_port
    external_proxy = os.environ.get(PROXY_API_ENV)
    if external_proxy:
        c.ConfigurableHTTPProxy.should_start = False
        c.ConfigurableHTTPProxy.api_url = external_proxy
    else:
        c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{platform.proxy_api_port}"
        c.ConfigurableHTTPProxy.pid_file = str(platform.data_dir / "jupyterhub-proxy.pid")
        proxy = proxy_command()
        if proxy:
            c.ConfigurableHTTPProxy.command = [proxy]

    # --- State ---
    c.JupyterHub.db_url = platform.hub_database_url
    c.JupyterHub.cookie_secret_file = str(platform.data_dir / "jupyterhub_cookie_secret")

    # --- Who may log in: admins and project members only, as `auth.type` says they prove it ---
    _authenticator(c, platform)
    c.Authenticator.admin_users = set(platform.admins)
    c.Authenticator.allowed_users = set(platform.users)

    # --- Projects are groups: membership and settings (quota, queue, node pool) live there ---
    c.JupyterHub.load_groups = {
        name: {"users": list(project.members), "properties": project.to_properties()}
        for name, project in platform.projects.items()
    }

    # --- Workspaces ---
    c.JupyterHub.allow_named_servers = True
    c.JupyterHub.named_server_limit_per_user = platform.named_servers
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = platform.start_timeout
    c.Spawner.http_timeout = 60
    template_store(platform.database_url).seed(platform.templates)

    _services(c, platform)
    _spawner(c, platform)
    _user_servers_apart(c, platform)


def _authenticator(c: Config, platform: PlatformConfig) -> None:
    kind = platform.auth.type
    if kind == "local":
        c.JupyterHub.authenticator_class = LocalPasswordAuthenticator
        c.LocalPasswordAuthenticator.database_url = platform.database_url
        c.LocalPasswordAuthenticator.min_password_length = platform.auth.min_password_length
        # the hub's pages, with a "Password" link to the change-password page in the navigation bar
        c.JupyterHub.template_paths = [str(LOCAL_PAGES)]
    elif kind == "shared":
        credentials, _ = ensure_credentials(platform)
        c.JupyterHub.authenticator_class = "shared-password"
        c.SharedPasswordAuthenticator.admin_password = credentials.admin_password
        c.SharedPasswordAuthenticator.user_password = credentials.user_password
    elif kind == "oauth":
        assert platform.auth.oauth is not None  # the config model requires it for oauth
        c.JupyterHub.authenticator_class = OIDCAuthenticator
        for trait, value in oidc.traits(platform.auth.oauth).items():
            setattr(c.OIDCAuthenticator, trait, value)
    else:
        c.JupyterHub.authenticator_class = "pam"


def _services(c: Config, platform: PlatformConfig) -> None:
    """The proxy serves the services at /services/<name>/. They listen on loopback, or, on
    Kubernetes, at the hub pod's address, where the proxy's pod and workspace pods reach them
    through the hub's Service."""
    service_env = {key: os.environ[key] for key in SERVICE_ENV if os.environ.get(key)}
    host = _services_host(platform)
    if not is_loopback(host):
        service_env["LAVAHUB_SERVICE_LISTEN"] = "0.0.0.0"

    def service(name: str, port: int, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "url": f"http://{host}:{port}",
            "command": [sys.executable, "-m", f"services.{name}"],
            "cwd": str(platform.data_dir),
            "environment": service_env,
            **extra,
        }

    # `templates`: the image-template catalogue (Services menu). Anyone lists the templates of
    # their projects; hub admins and holders of custom:templates:admin change them.
    c.JupyterHub.services = [
        # oauth_no_confirm: lavahub's own page, no "authorize this service?" step
        service("templates", platform.templates_service.port, display=True, oauth_no_confirm=True)
    ]
    c.JupyterHub.custom_scopes = {
        "custom:templates:admin": {
            "description": "Add, change, roll back and delete lavahub's image templates."
        }
    }
    user_scopes = ["self", "access:services!service=templates"]
    c.JupyterHub.load_roles = [
        # the service reads projects (groups) and running workspaces' templates (usage counts)
        {"name": "lavahub-templates", "scopes": ["list:groups", "list:users", "read:servers"],
         "services": ["templates"]},
        {"name": "lavahub-template-admins", "scopes": ["custom:templates:admin"],
         "users": list(platform.templates_service.admins),
         "groups": list(platform.templates_service.admin_groups)},
    ]  # fmt: skip

    # `jobs` runs notebook cells as distributed jobs. (`jobs.enabled: false` leaves it out, and
    # so does the kubernetes backend without an external Ray cluster: see `jobs_off`.)
    if platform.jobs_off is not None:
        c.Spawner.environment = {"LAVAHUB_JOBS_OFF": platform.jobs_off}
    else:
        jobs = service("jobs", platform.jobs.port, display=False)
        c.JupyterHub.services.append(jobs)
        # Every user may call the jobs service, and a workspace's own token may too, so the
        # %%job magic and the lab extension use the JUPYTERHUB_API_TOKEN they already have.
        user_scopes.append("access:services!service=jobs")
        c.JupyterHub.load_roles.append(
            {"name": "lavahub-jobs", "scopes": ["read:groups"], "services": ["jobs"]}
        )
        c.Spawner.server_token_scopes = [
            "access:servers!server",
            "users:activity!user",
            "access:services!service=jobs",
        ]
        # The lab extension calls the service as the person using the page, with the token of
        # their login to the server: such tokens may carry this scope (if the person has it).
        c.Spawner.oauth_client_allowed_scopes = ["access:services!service=jobs"]
        c.Spawner.environment = {"LAVAHUB_JOBS_URL": f"{_jobs_url(platform)}/services/jobs/"}
    c.JupyterHub.load_roles.append({"name": "user", "scopes": user_scopes})

    # `idle-culler` stops workspaces nobody used for culler.timeout seconds
    culler = platform.culler
    if culler.enabled:
        c.JupyterHub.services.append({
            "name": "idle-culler",
            "command": [
                sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={culler.timeout}",
                f"--cull-every={culler.every}", f"--max-age={culler.max_age}",
            ],
        })  # fmt: skip
        c.JupyterHub.load_roles.append(
            {"name": "lavahub-idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]}
        )


def _spawner(c: Config, platform: PlatformConfig) -> None:
    if platform.backend == "local":
        from spawner.local import LocalSpawner

        c.JupyterHub.spawner_class = LocalSpawner
        c.LocalSpawner.database_url = platform.database_url
        c.LocalSpawner.storage_root = str(platform.local_root)
        c.LocalSpawner.ip = "127.0.0.1"
        c.LocalSpawner.accounts = platform.os_accounts
        c.LocalSpawner.user_prefix = platform.accounts.user_prefix
        c.LocalSpawner.group_prefix = platform.accounts.group_prefix
        if not platform.os_accounts:
            # said on the hub's home page (JupyterHub's announcement_home)
            c.JupyterHub.template_vars = {"announcement_home": html.escape(single_account_notice())}
        return

    from spawner.kube import KubeWorkspaceSpawner

    # Workspaces are pods; the hub runs in a pod too and is reached through its Service.
    c.JupyterHub.spawner_class = KubeWorkspaceSpawner
    c.KubeWorkspaceSpawner.database_url = platform.database_url
    c.KubeWorkspaceSpawner.storage = platform.kubernetes_storage
    c.KubeWorkspaceSpawner.settings = platform.kubernetes
    if platform.jobs.backend == "volcano" and platform.jobs.volcano.workspaces_in_queues:
        # notebooks wait in their project's Volcano queue as its jobs do: one quota on the cluster
        c.KubeWorkspaceSpawner.volcano_scheduler = platform.jobs.volcano.scheduler_name
    # Pods reach the hub at its Service (LAVAHUB_HUB_SERVICE); it listens there, or on
    # loopback when that is where pods reach it (the tests' fake kubelet runs them here).
    c.JupyterHub.hub_connect_ip = hub_service()
    c.JupyterHub.hub_ip = "127.0.0.1" if is_loopback(hub_service()) else "0.0.0.0"


def _user_servers_apart(c: Config, platform: PlatformConfig) -> None:
    """JupyterHub's security model (docs/security.md): only a subdomain per user keeps one user's
    pages from scripting another's server or the services on the hub's origin; without
    ~/.jupyter config a user cannot change how their own server starts (its auth, its extensions)."""
    c.Spawner.disable_user_config = platform.disable_user_config
    if platform.subdomain_host is not None:
        c.JupyterHub.subdomain_host = platform.subdomain_host


def hub_service() -> str:
    """Where workspace pods reach the hub pod: its Service (`LAVAHUB_HUB_SERVICE`, the chart's `hub`)."""
    return os.environ.get("LAVAHUB_HUB_SERVICE", "hub")


def _services_host(platform: PlatformConfig) -> str:
    """Where the proxy and workspaces reach the hub's services: on loopback on one machine (and for
    the tests' fake kubelet), at the hub's Service from pods."""
    if platform.backend == "kubernetes" and not is_loopback(hub_service()):
        return hub_service()
    return "127.0.0.1"


def _jobs_url(platform: PlatformConfig) -> str:
    """The jobs service as workspaces reach it."""
    return f"http://{_services_host(platform)}:{platform.jobs.port}"

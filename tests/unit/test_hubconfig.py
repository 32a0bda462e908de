"""lavahub.hubconfig.configure: the JupyterHub config a platform config produces."""

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from lavahub_jupyter.client import JobsClient, JobsError
from traitlets.config import Config

from lavahub.auth.local import LocalPasswordAuthenticator
from lavahub.auth.oidc import OIDCAuthenticator
from lavahub.config import PlatformConfig, parse_config
from lavahub.hubconfig import configure
from spawner.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def configured(tmp_path, **raw) -> tuple[Config, PlatformConfig]:
    platform = parse_config({"data_dir": str(tmp_path / "data"), **raw})
    c = Config()
    configure(c, platform)
    return c, platform


def test_local_platform(tmp_path):
    c, _ = configured(tmp_path, port=9000, start_timeout=45)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9000"
    assert (c.JupyterHub.hub_ip, c.JupyterHub.hub_port) == ("127.0.0.1", 8081)
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8001"
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'data' / 'jupyterhub.sqlite'}"
    assert c.JupyterHub.spawner_class.__name__ == "LocalSpawner"
    assert c.LocalSpawner.storage_root == str(tmp_path / "data")
    assert c.Spawner.start_timeout == 45
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allowed_users == {"admin", "alice", "bob"}
    assert set(c.JupyterHub.load_groups) == {"default", "vision"}
    # a password per user (`lavahub up` makes them), the templates seeded
    assert c.JupyterHub.authenticator_class is LocalPasswordAuthenticator
    assert c.LocalPasswordAuthenticator.database_url == f"sqlite:///{tmp_path / 'data' / 'lavahub.sqlite'}"
    assert not (tmp_path / "data" / "credentials").exists()
    assert (tmp_path / "data" / "lavahub.sqlite").exists()


def test_shared_passwords(tmp_path):
    c, _ = configured(tmp_path, auth={"type": "shared"})
    assert c.JupyterHub.authenticator_class == "shared-password"
    # the shared passwords are generated on first start
    assert len(c.SharedPasswordAuthenticator.admin_password) >= 32
    assert (tmp_path / "data" / "credentials").exists()
    assert c.Authenticator.allowed_users == {"admin", "alice", "bob"}


def test_pam(tmp_path):
    c, _ = configured(tmp_path, auth={"type": "pam"})
    assert c.JupyterHub.authenticator_class == "pam"
    assert c.Authenticator.admin_users == {"admin"}
    assert c.Authenticator.allowed_users == {"admin", "alice", "bob"}


def test_oauth_with_its_endpoints_given(tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text("from-a-file\n")
    oauth = {
        "client_id": "lavahub", "client_secret_file": str(secret), "username_claim": "email",
        "authorize_url": "https://id.example/a", "token_url": "https://id.example/t",
        "userdata_url": "https://id.example/u", "admin_groups": ["ml-admins"],
    }  # fmt: skip
    c, _ = configured(tmp_path, auth={"type": "oauth", "oauth": oauth})
    assert c.JupyterHub.authenticator_class is OIDCAuthenticator
    o = c.OIDCAuthenticator
    assert (o.client_id, o.client_secret, o.username_claim) == ("lavahub", "from-a-file", "email")
    assert (o.authorize_url, o.token_url, o.userdata_url) == (
        "https://id.example/a", "https://id.example/t", "https://id.example/u",
    )  # fmt: skip
    assert o.scope == ["openid", "profile", "email"]
    assert (o.groups_claim, o.admin_groups_claimed) == ("groups", {"ml-admins"})
    assert c.Authenticator.allowed_users == {"admin", "alice", "bob"}


def test_oauth_endpoints_from_the_issuers_discovery_document(tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Discovery(BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/realm/.well-known/openid-configuration"
            body = json.dumps({"authorization_endpoint": "http://id/a", "token_endpoint": "http://id/t",
                               "userinfo_endpoint": "http://id/u"}).encode()  # fmt: skip
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(body if found else b"")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    issuer = f"http://127.0.0.1:{server.server_port}/realm"
    try:
        oauth = {"client_id": "c", "client_secret": "s", "issuer": issuer, "token_url": "http://mine/t"}
        c, _ = configured(tmp_path, auth={"type": "oauth", "oauth": oauth})
        o = c.OIDCAuthenticator
        assert (o.authorize_url, o.token_url, o.userdata_url) == (
            "http://id/a",
            "http://mine/t",
            "http://id/u",
        )
        wrong = {**oauth, "issuer": issuer + "/nope"}
        with pytest.raises(ConfigError, match=r"auth\.oauth\.issuer: cannot read"):
            configured(tmp_path, auth={"type": "oauth", "oauth": wrong})
    finally:
        server.shutdown()


def test_services_roles_and_scopes(tmp_path):
    c, _ = configured(tmp_path, templates_service={"admins": ["dana"], "admin_groups": ["vision"]})
    services = {s["name"]: s for s in c.JupyterHub.services}
    assert {name: s["url"] for name, s in services.items()} == {
        "templates": "http://127.0.0.1:8083",
        "jobs": "http://127.0.0.1:8082",
    }
    assert services["jobs"]["command"] == [sys.executable, "-m", "services.jobs"]
    assert services["templates"]["display"] and not services["jobs"]["display"]
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert set(roles) == {"lavahub-templates", "lavahub-template-admins", "lavahub-jobs", "user"}
    assert (roles["lavahub-template-admins"]["users"], roles["lavahub-template-admins"]["groups"]) == (
        ["dana"],
        ["vision"],
    )
    assert roles["user"]["scopes"] == [
        "self",
        "access:services!service=templates",
        "access:services!service=jobs",
    ]
    assert "access:services!service=jobs" in c.Spawner.server_token_scopes
    # the lab extension's calls use the visitor's login token, which may carry it too
    assert c.Spawner.oauth_client_allowed_scopes == ["access:services!service=jobs"]
    assert c.Spawner.environment == {"LAVAHUB_JOBS_URL": "http://127.0.0.1:8082/services/jobs/"}


def test_without_jobs_there_is_no_jobs_service(tmp_path):
    c, _ = configured(tmp_path, jobs={"enabled": False})
    assert [s["name"] for s in c.JupyterHub.services] == ["templates"]
    assert "server_token_scopes" not in c.Spawner
    assert "oauth_client_allowed_scopes" not in c.Spawner
    assert "LAVAHUB_JOBS_URL" not in c.Spawner.get("environment", {})


def test_kubernetes_platform(tmp_path, monkeypatch):
    monkeypatch.delenv("LAVAHUB_HUB_SERVICE", raising=False)
    c, platform = configured(
        tmp_path, backend="kubernetes", bind="0.0.0.0", kubernetes={"namespace": "ml", "start_timeout": 90},
        jobs={"ray": {"address": "http://ray-head:8265"}},
    )  # fmt: skip
    assert c.JupyterHub.spawner_class.__name__ == "KubeWorkspaceSpawner"
    assert c.KubeWorkspaceSpawner.settings.namespace == "ml"
    assert c.KubeWorkspaceSpawner.storage == platform.kubernetes_storage
    assert (c.JupyterHub.hub_connect_ip, c.JupyterHub.hub_ip) == ("hub", "0.0.0.0")
    assert c.JupyterHub.bind_url == "http://0.0.0.0:8000"
    # one start timeout for both backends; kubernetes.start_timeout is its former name
    assert c.Spawner.start_timeout == platform.start_timeout == 90
    # pods reach the jobs service at the hub's Service, where it listens beyond loopback
    assert c.Spawner.environment == {"LAVAHUB_JOBS_URL": "http://hub:8082/services/jobs/"}
    # the proxy routes to the services at the hub's Service too, where they listen beyond loopback
    for service in c.JupyterHub.services:
        assert service["url"].startswith("http://hub:")
        assert service["environment"]["LAVAHUB_SERVICE_LISTEN"] == "0.0.0.0"


def test_kubernetes_runs_no_jobs_in_the_hub_pod_without_an_external_ray(tmp_path, monkeypatch):
    monkeypatch.delenv("LAVAHUB_HUB_SERVICE", raising=False)
    c, platform = configured(tmp_path, backend="kubernetes", bind="0.0.0.0")
    assert [s["name"] for s in c.JupyterHub.services] == ["templates"]
    assert c.Spawner.environment == {"LAVAHUB_JOBS_OFF": platform.jobs_off}
    assert platform.jobs_off and "jobs.ray.address" in platform.jobs_off and "hub's pod" in platform.jobs_off
    # the magic says so in one line
    with pytest.raises(JobsError, match="jobs are off on this platform"):
        JobsClient.from_env(c.Spawner.environment)


def test_volcano_runs_jobs_on_kubernetes_and_may_queue_workspaces_too(tmp_path, monkeypatch):
    monkeypatch.delenv("LAVAHUB_HUB_SERVICE", raising=False)
    c, platform = configured(
        tmp_path, backend="kubernetes", bind="0.0.0.0",
        jobs={"backend": "volcano", "volcano": {"workspaces_in_queues": True}},
    )  # fmt: skip
    assert platform.jobs_off is None
    assert "jobs" in [s["name"] for s in c.JupyterHub.services]
    assert c.KubeWorkspaceSpawner.volcano_scheduler == "volcano"
    c, _ = configured(tmp_path, backend="kubernetes", bind="0.0.0.0", jobs={"backend": "volcano"})
    assert "volcano_scheduler" not in c.KubeWorkspaceSpawner


def test_user_servers_ignore_user_config_and_share_the_hubs_origin_by_default(tmp_path):
    c, _ = configured(tmp_path)
    assert c.Spawner.disable_user_config is True
    assert "subdomain_host" not in c.JupyterHub


def test_subdomain_host_and_user_config_as_configured(tmp_path, monkeypatch):
    monkeypatch.delenv("LAVAHUB_HUB_SERVICE", raising=False)
    c, _ = configured(
        tmp_path, backend="kubernetes", subdomain_host="https://hub.example.org", disable_user_config=False
    )
    assert c.JupyterHub.subdomain_host == "https://hub.example.org"
    assert c.Spawner.disable_user_config is False
    local, _ = configured(tmp_path, subdomain_host="http://localhost:8000")
    assert local.JupyterHub.subdomain_host == "http://localhost:8000"


def test_hub_config_file_refuses_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "lavahub.yaml"
    bad.write_text("jobs:\n  ray:\n    port: 15000\n")
    run = (
        "import runpy, traitlets.config as t; "
        f"runpy.run_path({str(REPO / 'jupyterhub_config.py')!r}, init_globals={{'get_config': t.Config}})"
    )
    env = {**os.environ, "LAVAHUB_CONFIG": str(bad), "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        "lavahub: error: lavahub.yaml: jobs.ray.port: 15000 is in the range Ray keeps for its workers "
        "(10002-19999) (pick a port outside it, such as 6380 or 8265)\n"
    )


def test_hub_config_file_configures_from_the_platform_config(tmp_path, monkeypatch):
    config = tmp_path / "lavahub.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\nport: 9100\n")
    monkeypatch.setenv("LAVAHUB_CONFIG", str(config))
    c = Config()
    runpy.run_path(str(REPO / "jupyterhub_config.py"), init_globals={"get_config": lambda: c})
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9100"


@pytest.mark.parametrize("backend", ["local", "kubernetes"])
def test_the_data_dir_is_private(tmp_path, backend):
    configured(tmp_path, backend=backend)
    assert (tmp_path / "data").stat().st_mode & 0o077 == 0


def test_one_os_user_for_everyone_is_said_on_the_home_page(tmp_path):
    c, platform = configured(tmp_path, accounts={"mode": "off"})
    assert not platform.os_accounts and c.LocalSpawner.accounts is False
    assert "every workspace and job runs as the OS user" in c.JupyterHub.template_vars["announcement_home"]


def test_a_proxy_of_its_own_is_configured_not_started(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVAHUB_PROXY_API_URL", "http://lh-proxy-api:8001")
    c, _ = configured(tmp_path, backend="kubernetes", bind="0.0.0.0", jobs={"backend": "volcano"})
    assert c.ConfigurableHTTPProxy.should_start is False
    assert c.ConfigurableHTTPProxy.api_url == "http://lh-proxy-api:8001"
    assert "command" not in c.ConfigurableHTTPProxy


def test_database_urls_from_the_environment(tmp_path, monkeypatch):
    """The chart keeps PostgreSQL URLs (with their passwords) in its Secret, not in the config."""
    monkeypatch.setenv("LAVAHUB_HUB_DATABASE_URL", "postgresql://hub:pw@db/hub")
    monkeypatch.setenv("LAVAHUB_DATABASE_URL", "postgresql://hub:pw@db/lavahub")
    platform = parse_config({"data_dir": str(tmp_path)})
    assert (platform.hub_database_url, platform.database_url) == (
        "postgresql://hub:pw@db/hub",
        "postgresql://hub:pw@db/lavahub",
    )
    # given in the config, a URL is the config's
    assert (
        parse_config({"data_dir": str(tmp_path), "database_url": "sqlite:///x"}).database_url == "sqlite:///x"
    )


def test_the_idle_culler_is_a_service_with_only_what_it_needs(tmp_path):
    c, _ = configured(tmp_path)
    assert "idle-culler" not in [s["name"] for s in c.JupyterHub.services]
    c, _ = configured(tmp_path, culler={"enabled": True, "timeout": 120, "every": 30})
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert culler["command"][1:] == [
        "-m", "jupyterhub_idle_culler", "--timeout=120", "--cull-every=30", "--max-age=0",
    ]  # fmt: skip
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "lavahub-idle-culler")
    assert role["services"] == ["idle-culler"]
    assert set(role["scopes"]) == {"list:users", "read:users:activity", "read:servers", "delete:servers"}
    assert not any("admin" in scope for scope in role["scopes"])
    # the command the hub runs exists here, with these options
    shown = subprocess.run([*culler["command"][:3], "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--cull-every" in shown.stdout and "--max-age" in shown.stdout

"""A real Kubernetes API server (etcd + kube-apiserver on loopback) for the Kubernetes tests.

No container runtime can run on the development and CI machines, but a real API server can:
it gives the tests real validation, watches, status subresources and RBAC instead of an
imitation. Nothing schedules or runs pods; the tests play the scheduler and the kubelet
(tests/kubernetes/kubelet.py).
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes_asyncio.client import ApiClient, RbacAuthorizationV1Api
from kubernetes_asyncio.config import new_client_from_config

# kubernetes_asyncio's stubs type every request body as its model class (V1Pod...); its client
# sends a plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

KUBERNETES_VERSION = "1.20.2"
BUILD_HINT = "kube-apiserver not built: run `make kube-apiserver` (tests/kubernetes/build-apiserver)"
ADMIN = "admin"


@functools.cache
def chart_rules() -> dict[str, list[dict[str, Any]]]:
    """The rules the Helm chart grants the hub's service account, rendered by Helm from the chart:
    `hub` (the spawner, in the workspaces' namespace), `jobs` (the jobs service, in the jobs'
    namespace) and `jobs-cluster` (cluster-wide, read-only)."""
    from tests.chart import full_values, objects, one

    found = objects(full_values())
    return {
        "hub": one(found, "Role", "lavahub-hub")["rules"],
        "jobs": one(found, "Role", "lavahub-hub-jobs")["rules"],
        "jobs-cluster": one(found, "ClusterRole", "lavahub-lavahub-hub-jobs")["rules"],
    }


async def grant_hub_role(admin: ApiClient, namespace: str, user: str = "hub") -> None:
    """Bind `user` to exactly the chart's hub Role in `namespace`."""
    rbac = RbacAuthorizationV1Api(admin)
    await rbac.create_namespaced_role(
        namespace,
        {"metadata": {"name": "lavahub-hub"}, "rules": chart_rules()["hub"]},  # type: ignore[arg-type]
    )
    await rbac.create_namespaced_role_binding(namespace, {  # type: ignore[arg-type]
        "metadata": {"name": "lavahub-hub"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lavahub-hub"},
        "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}],
    })  # fmt: skip


async def grant_jobs_roles(admin: ApiClient, namespace: str, user: str = "jobs") -> None:
    """Bind `user` to exactly the chart's jobs Role (in `namespace`) and its ClusterRole."""
    rbac = RbacAuthorizationV1Api(admin)
    subjects = [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]
    rules = chart_rules()
    cluster_role = f"lavahub-jobs-{namespace}"
    role = {"metadata": {"name": "lavahub-jobs"}, "rules": rules["jobs"]}
    await rbac.create_namespaced_role(namespace, role)  # type: ignore[arg-type]
    await rbac.create_namespaced_role_binding(namespace, {  # type: ignore[arg-type]
        "metadata": {"name": "lavahub-jobs"}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "lavahub-jobs"},
    })  # fmt: skip
    await rbac.create_cluster_role({"metadata": {"name": cluster_role}, "rules": rules["jobs-cluster"]})  # type: ignore[arg-type]
    await rbac.create_cluster_role_binding({  # type: ignore[arg-type]
        "metadata": {"name": cluster_role}, "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
    })  # fmt: skip


def cache_dir() -> Path:
    """Where build-apiserver puts the binary: outside the clone, so CI builds it once per machine."""
    root = os.environ.get("LAVAHUB_CACHE") or Path.home() / ".cache" / "lavahub"
    return Path(root) / f"kubernetes-{KUBERNETES_VERSION}"


def apiserver_binary() -> Path | None:
    """The cached kube-apiserver, or None when `make kube-apiserver` has not been run."""
    binary = cache_dir() / "kube-apiserver"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def etcd_binary() -> Path | None:
    """Debian's etcd-server (installed by build-apiserver), or any etcd on PATH."""
    found = shutil.which("etcd")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the test process dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} missing)"
    return "\n".join(text[-lines:])


class KubeClusterError(RuntimeError):
    pass


class KubeCluster:
    """etcd and kube-apiserver on free loopback ports, in a temporary directory.

    `users` maps extra user names to their groups; each gets a bearer token (see `token`) and no
    permissions beyond what RBAC objects grant, so tests can check what a restricted identity
    may do. `admin` is in `system:masters`.

        with KubeCluster(users={"hub": ["lavahub:hub"]}) as cluster:
            api = await cluster.api_client("hub")
    """

    emulated = True  # nothing schedules or runs pods: tests play scheduler and kubelet

    def __init__(
        self,
        users: Mapping[str, Sequence[str]] | None = None,
        *,
        binary: Path | None = None,
        etcd: Path | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 120.0,
    ) -> None:
        self.binary = binary or apiserver_binary()
        self.etcd = etcd or etcd_binary()
        if self.binary is None:
            raise KubeClusterError(BUILD_HINT)
        if self.etcd is None:
            raise KubeClusterError(
                "etcd not found on PATH: apt-get install etcd-server (build-apiserver does)"
            )
        users = dict(users or {})
        if ADMIN in users:
            raise ValueError(f"{ADMIN!r} is the built-in system:masters user")
        self.groups: dict[str, list[str]] = {
            ADMIN: ["system:masters"],
            **{u: list(g) for u, g in users.items()},
        }
        self.tokens: dict[str, str] = {user: secrets.token_hex(24) for user in self.groups}
        self.startup_timeout = startup_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lavahub-kube-"))
        self.cert_dir = self.workdir / "certs"
        self.etcd_log = self.workdir / "etcd.log"
        self.apiserver_log = self.workdir / "kube-apiserver.log"
        self.audit_log = self.workdir / "audit.log"
        self.etcd_port = free_port()
        self.port = free_port()
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return self.tokens[ADMIN]

    def token(self, user: str = ADMIN) -> str:
        return self.tokens[user]

    @property
    def ca_file(self) -> Path:
        """The serving certificate bundle kube-apiserver generated (self-signed CA + cert)."""
        return self.cert_dir / "apiserver.crt"

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> KubeCluster:
        atexit.register(self.stop)
        try:
            self._write_auth_files()
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd: SIGTERM, then SIGKILL after 10 s. Safe to call twice."""
        atexit.unregister(self.stop)
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
        if self._own_workdir and not os.environ.get("LAVAHUB_KEEP_KUBE"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KubeCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        self._processes.append(process)
        return process

    def requests_of(self, user: str) -> list[dict[str, Any]]:
        """The audit log's events for `user`'s requests so far: verb, objectRef, responseStatus."""
        try:
            lines = self.audit_log.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = (json.loads(line) for line in lines if line.strip())
        return [e for e in events if e.get("user", {}).get("username") == user]

    def _write_auth_files(self) -> None:
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        # Token file lines: token,user,uid,"group1,group2"
        lines = [f'{self.tokens[u]},{u},{u},"{",".join(g)}"' for u, g in self.groups.items()]
        tokens = self.workdir / "tokens.csv"
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)
        # the declared users' requests (a watch also when it starts), with no bodies
        declared = [u for u in self.groups if u != ADMIN]
        policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata", "users": declared}, {"level": "None"}]
            if declared
            else [{"level": "None"}],
        }
        (self.workdir / "audit-policy.yaml").write_text(yaml.safe_dump(policy))
        # Service-account tokens are signed with this key: the API server refuses to start without one.
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.workdir / "sa.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (self.workdir / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{free_port()}"
        process = self._spawn(
            [
                str(self.etcd),
                "--name=lavahub-test",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=lavahub-test={peer}",
                "--log-level=warn",
            ],
            self.etcd_log,
        )
        self._wait(
            "etcd", process, self.etcd_log, lambda: _get_json(f"{client}/health").get("health") == "true"
        )

    def _start_apiserver(self) -> None:
        process = self._spawn(
            [
                str(self.binary),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.port}",
                "--insecure-port=0",
                # the tests' nodes report an unresolvable Hostname: pods/log goes to their InternalIP
                "--kubelet-preferred-address-types=InternalIP",
                f"--cert-dir={self.cert_dir}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                # no controller-manager creates the service accounts that admission would require
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--profiling=false",
                # every request of the declared users, for what RBAC grants against what is used
                f"--audit-policy-file={self.workdir / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                "--audit-log-maxsize=0",
            ],
            self.apiserver_log,
        )
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def ready() -> bool:
            request = urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
            )
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return response.status == 200

        self._wait("kube-apiserver", process, self.apiserver_log, ready)

    def _wait(self, name: str, process: subprocess.Popen[bytes], log: Path, ready: Any) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last_error = "never answered"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KubeClusterError(
                    f"{name} exited with status {process.returncode} while starting; "
                    f"last lines of {log}:\n{_tail(log)}"
                )
            try:
                if ready():
                    return
                last_error = "not ready"
            except (OSError, urllib.error.URLError, ValueError) as error:
                last_error = str(error)
            time.sleep(0.25)
        raise KubeClusterError(
            f"{name} not ready after {self.startup_timeout:.0f} s ({last_error}); "
            f"last lines of {log}:\n{_tail(log)}"
        )

    # --- clients ---------------------------------------------------------------------------------

    def kubeconfig(self, user: str = ADMIN) -> Path:
        """A kubeconfig for `user` (token auth, CA from the API server's cert dir)."""
        path = self.workdir / f"kubeconfig-{user}"
        if not path.exists():
            cluster: dict[str, Any] = {"server": self.server}
            if self.ca_file.exists():
                cluster["certificate-authority"] = str(self.ca_file)
            else:
                cluster["insecure-skip-tls-verify"] = True
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "lavahub-test", "cluster": cluster}],
                "users": [{"name": user, "user": {"token": self.token(user)}}],
                "contexts": [{"name": user, "context": {"cluster": "lavahub-test", "user": user}}],
                "current-context": user,
            }
            path.write_text(yaml.safe_dump(config))
            path.chmod(0o600)
        return path

    async def api_client(self, user: str = ADMIN) -> ApiClient:
        """A kubernetes_asyncio ApiClient acting as `user`; close it (`async with`) when done."""
        return await new_client_from_config(config_file=str(self.kubeconfig(user)), persist_config=False)


class ExternalCluster:
    """A cluster the environment points at (LAVAHUB_KUBECONFIG), with KubeCluster's interface.

    Only the kubeconfig's own identity is available, and real nodes, schedulers and kubelets run
    pods, so tests that declare extra users or play the kubelet skip on it (`emulated` is False).
    """

    emulated = False

    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = Path(kubeconfig)
        config = yaml.safe_load(self._kubeconfig.read_text())
        context_name = config.get("current-context")
        context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        self.server: str = cluster["server"]
        self.groups: dict[str, list[str]] = {}

    @property
    def admin_token(self) -> str | None:
        return None  # whatever the kubeconfig authenticates with

    def kubeconfig(self, user: str = ADMIN) -> Path:
        if user != ADMIN:
            raise LookupError(f"an external cluster has only the kubeconfig's identity, not {user!r}")
        return self._kubeconfig

    async def api_client(self, user: str = ADMIN) -> ApiClient:
        return await new_client_from_config(config_file=str(self.kubeconfig(user)), persist_config=False)

    def stop(self) -> None:
        pass


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())

"""The tests' kubelet that runs pods: each container of a pod bound to its node, as a local process.

No container runtime exists on the test machines. `ProcessKubelet` does for a pod what a
kubelet and a runtime do, as far as lavahub's jobs can tell: init containers first, then
the containers, each in a mount namespace of its own where the pod's volumes appear at
their mount paths (a claim is a local directory, a ConfigMap is materialised), as the
pod's uid and gid, with the pod's environment only; it reports phases and exit codes
through the pod status subresource, kills a deleted pod's processes, and serves every
container run's log over HTTPS at the Node's kubelet port, so that `pods/log` streams
through the real API server (which reaches it at the Node's InternalIP).

A container's `command[0]` is mapped to a local program (`programs`): the image is not
there, so `python` means this interpreter. Mount points that do not exist here are made in
a tmpfs over `/home` and `/mnt` inside the container's namespace; others (lavahub's init
container mounts at `/lavahub`) are made on this machine, as empty directories.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import datetime as dt
import ipaddress
import logging
import os
import re
import shutil
import signal
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes_asyncio import watch
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from services.jobs.backends.volcano.kubeapi import read_json

from .kubelet import FakeKubelet

# kubernetes_asyncio's stubs type every request body as its model class; its client sends a
# plain dict as it is, hence `type: ignore[arg-type]` where a call passes one

log = logging.getLogger(__name__)

CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
TMPFS_ROOTS = ("/home", "/mnt")  # mount points below these are made in the container's own tmpfs
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_GRACE = 3.0  # seconds a deleted pod's processes get after SIGTERM, whatever the pod asks


def _stamp() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def instant(stamp: str) -> str:
    """An RFC 3339 time as text that sorts as time does (the fraction padded to nanoseconds)."""
    body = stamp.rstrip("Z")
    whole, _, fraction = body.partition(".")
    return f"{whole}.{fraction:0<9}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _certificate(folder: Path) -> ssl.SSLContext:
    """A self-signed serving certificate for 127.0.0.1 (the API server does not verify it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lavahub-test-kubelet")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "kubelet.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "kubelet.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "kubelet.crt", folder / "kubelet.key")
    return context


@dataclass
class Run:
    """One run of one container: its log file (`<stamp> <line>` per line) and whether it ended."""

    path: Path
    ended: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class PodRun:
    """What the kubelet keeps of one pod it runs."""

    uid: str
    namespace: str
    name: str
    folder: Path
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    deleting: bool = False
    deletion: asyncio.Future[None] | None = None


def _mount(source: str | None, target: str, fstype: str | None, flags: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if (
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            None,
        )
        != 0
    ):
        errno = ctypes.get_errno()
        raise OSError(errno, f"mount {source} on {target}: {os.strerror(errno)}")


def in_container(
    mounts: list[tuple[str, str, bool]],
    hosts: str | None,
    uid: int,
    gid: int,
    groups: list[int],
    cwd: str,
    *,
    new_session: bool = True,
) -> Any:
    """The preexec function: a private mount namespace with the volumes, then the pod's user.

    `new_session=False` for a caller that starts the process in its own session already
    (jupyter_client's kernels: `start_new_session`).
    """

    def setup() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the tests
        if new_session:
            os.setsid()
        if libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        for root in TMPFS_ROOTS:
            if any(target == root or target.startswith(root + "/") for _, target, _ in mounts):
                _mount("tmpfs", root, "tmpfs", 0)
        for source, target, read_only in mounts:
            os.makedirs(target, exist_ok=True)
            _mount(source, target, None, MS_BIND | MS_REC)
            if read_only:
                _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY)
        if hosts:
            _mount(hosts, "/etc/hosts", None, MS_BIND)
        os.setgroups(groups)
        os.setgid(gid)
        os.setuid(uid)
        os.chdir(cwd)

    return setup


class ProcessKubelet(FakeKubelet):
    """Runs the pods bound to its nodes; serves their logs at `kubelet_port` (start it first)."""

    def __init__(
        self,
        api: ApiClient,
        *,
        claims: Mapping[str, Path],
        programs: Mapping[str, str],
        workdir: Path,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.claims = {name: Path(path) for name, path in claims.items()}
        self.programs = dict(programs)
        self.api = api
        self.pods: dict[str, PodRun] = {}
        self.runs: dict[tuple[str, str, str], list[Run]] = {}  # (namespace, pod, container)
        self._ssl = _certificate(workdir)
        self._server: web.AppRunner | None = None
        self._started: list[asyncio.subprocess.Process] = []
        super().__init__(api, kubelet_port=0)

    # -- the log server --------------------------------------------------------------------------
    async def start_server(self) -> int:
        app = web.Application()
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        self._server = web.AppRunner(app, access_log=None)
        await self._server.setup()
        site = web.TCPSite(self._server, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.kubelet_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.kubelet_port

    async def register_node(self, name: str, **kwargs: Any) -> dict[str, Any]:
        if self._server is None:
            await self.start_server()
        return await super().register_node(name, **kwargs)

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve_log(request)
        except ConnectionResetError:  # the reader went away (a follower that stopped): nothing to do
            return web.Response(status=499)

    async def _serve_log(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["namespace"], request.match_info["pod"], request.match_info["container"])
        runs = self.runs.get(key)
        if not runs:
            return web.Response(status=404, text=f"container {key[2]!r} of pod {key[1]!r} not found")
        query = request.query
        previous = query.get("previous") == "true"
        if previous and len(runs) < 2:
            return web.Response(
                status=400, text=f'previous terminated container "{key[2]}" in pod "{key[1]}" not found'
            )
        run = runs[-2] if previous else runs[-1]
        follow = query.get("follow") == "true" and not previous
        stamps = query.get("timestamps") == "true"
        since = query.get("sinceTime")
        if "sinceSeconds" in query:
            since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(query["sinceSeconds"]))).strftime(
                "%Y-%m-%dT%H:%M:%S.%fZ"
            )
        tail = int(query["tailLines"]) if "tailLines" in query else None
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent, buffer, first = 0, b"", True
        with run.path.open("rb") as source:
            while True:
                data = source.read()
                *complete, buffer = (buffer + data).split(b"\n")
                if first and tail is not None:
                    complete = complete[-tail:] if tail else []
                first = False
                chunk: list[bytes] = []  # what was read at once goes out in one write, as a kubelet does
                for line in complete:
                    stamp, _, text = line.partition(b" ")
                    if since and instant(stamp.decode()) < instant(since):
                        continue
                    out = (line if stamps else text) + b"\n"
                    if limit is not None and sent + len(out) > limit:
                        await response.write(b"".join(chunk))
                        await response.write_eof()
                        return response
                    chunk.append(out)
                    sent += len(out)
                if chunk:
                    await response.write(b"".join(chunk))
                if not follow or (run.ended.is_set() and not data):
                    break
                await asyncio.sleep(0.05)
        await response.write_eof()
        return response

    # -- the pods ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def running(  # type: ignore[override]
        self, namespace: str, node: str, label_selector: str | None = None, *, bind: bool = False
    ) -> AsyncIterator[asyncio.Task[None]]:
        if self._server is None:
            await self.start_server()
        task = asyncio.create_task(self._watch(namespace, node, label_selector, bind))
        try:
            yield task
        finally:
            if task.done() and not task.cancelled():
                task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for run in list(self.pods.values()):
                self._kill(run, signal.SIGKILL)
                if run.task is not None:
                    run.task.cancel()
            await self._reap()
            if self._server is not None:
                await self._server.cleanup()
                self._server = None

    async def _watch(self, namespace: str, node: str, selector: str | None, bind: bool) -> None:
        kwargs: dict[str, Any] = {"label_selector": selector} if selector else {}
        while True:
            try:
                data = await read_json(self.core.list_namespaced_pod, namespace, **kwargs)
                for pod in data["items"]:
                    await self._seen(pod, node, bind)
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    namespace,
                    resource_version=data["metadata"]["resourceVersion"],
                    timeout_seconds=120,
                    **kwargs,
                )
                async with stream:
                    async for event in stream:
                        pod = event["raw_object"]
                        if event["type"] == "DELETED":
                            self._gone(pod)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            await self._seen(pod, node, bind)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("process kubelet: watching pods failed; again")
                await asyncio.sleep(0.5)

    async def _seen(self, pod: dict[str, Any], node: str, bind: bool) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        if spec.get("nodeName") is None and bind:
            await self.bind_pod(meta["namespace"], meta["name"], node)
            return
        if spec.get("nodeName") != node:
            return
        run = self.pods.get(uid)
        if meta.get("deletionTimestamp"):
            if run is None:
                await self.finish_deletion(meta["namespace"], meta["name"], uid)
            elif not run.deleting:
                run.deleting = True
                run.deletion = asyncio.ensure_future(self._delete(run, pod))
            return
        if run is None and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            folder = Path(tempfile.mkdtemp(prefix=f"{meta['name'][:40]}-", dir=self.workdir))
            run = self.pods[uid] = PodRun(uid, meta["namespace"], meta["name"], folder)
            run.task = asyncio.ensure_future(self._run_pod(run, pod))

    def _gone(self, pod: Mapping[str, Any]) -> None:
        run = self.pods.pop(pod["metadata"]["uid"], None)
        if run is not None:
            self._kill(run, signal.SIGKILL)
            if run.task is not None:
                run.task.cancel()

    async def _delete(self, run: PodRun, pod: Mapping[str, Any]) -> None:
        self._kill(run, signal.SIGTERM)
        grace = min(float((pod.get("spec") or {}).get("terminationGracePeriodSeconds") or 30), MAX_GRACE)
        deadline = asyncio.get_running_loop().time() + grace
        while (
            any(p.returncode is None for p in run.processes) and asyncio.get_running_loop().time() < deadline
        ):
            await asyncio.sleep(0.05)
        self._kill(run, signal.SIGKILL)
        if run.task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(run.task), 5)
        await self.finish_deletion(run.namespace, run.name, run.uid)
        self.pods.pop(run.uid, None)
        shutil.rmtree(run.folder, ignore_errors=True)

    async def _reap(self) -> None:
        """Wait for every process this kubelet started to exit and its output pipe to close, so that
        none is left for the garbage collector to close after the test's event loop is gone."""
        for process in self._started:
            if process.returncode is None:  # not yet reaped: its pid is still its own
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), 10)
            if process.stdout is not None:
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(process.stdout.read(), 5)
        self._started.clear()
        await asyncio.sleep(0)  # the transports' own closing, scheduled by the lines above

    @staticmethod
    def _kill(run: PodRun, sig: int) -> None:
        for process in run.processes:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)

    async def lose_node(self, node: str) -> None:
        """The node goes away: NotReady, and its pods evicted (their processes killed)."""
        await self.set_node_status(node, ready=False)
        for run in list(self.pods.values()):
            self._kill(run, signal.SIGKILL)
            status = {"phase": "Failed", "reason": "Evicted", "message": f"The node {node} was lost."}
            with contextlib.suppress(ApiException):
                await self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": status})

    # -- one pod -----------------------------------------------------------------------------
    async def _run_pod(self, run: PodRun, pod: dict[str, Any]) -> None:
        spec = pod.get("spec") or {}
        try:
            volumes = await self._volumes(run, pod)
            hosts = await self._hosts(run, pod)
        except Exception as e:  # a missing ConfigMap or claim: the pod waits, as with a runtime
            log.warning("pod %s/%s cannot start: %s", run.namespace, run.name, e)
            await self._status(
                run,
                {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "ContainersReady",
                            "status": "False",
                            "reason": "ContainerCreating",
                            "message": str(e),
                        }
                    ],
                },
            )
            return
        started = _now()
        inits: list[dict[str, Any]] = []
        for container in spec.get("initContainers") or []:
            code = await self._container(run, pod, container, volumes, hosts)
            inits.append(self._terminated(container, code, started))
            if code != 0:
                await self._status(
                    run, {"phase": "Failed", "initContainerStatuses": inits, "startTime": started}
                )
                return
        policy = spec.get("restartPolicy") or "Always"
        containers = spec.get("containers") or []
        restarts = {c["name"]: 0 for c in containers}
        last: dict[str, dict[str, Any]] = {}
        while True:
            statuses = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": f"fake://{c.get('image', '')}",
                    "containerID": f"fake://{run.uid}/{c['name']}",
                    "ready": True,
                    "started": True,
                    "restartCount": restarts[c["name"]],
                    "state": {"running": {"startedAt": _now()}},
                    **({"lastState": {"terminated": last[c["name"]]}} if c["name"] in last else {}),
                }
                for c in containers
            ]
            await self._status(
                run,
                {
                    "phase": "Running",
                    "hostIP": "127.0.0.1",
                    "podIP": "127.0.0.1",
                    "podIPs": [{"ip": "127.0.0.1"}],
                    "startTime": started,
                    "initContainerStatuses": inits,
                    "containerStatuses": statuses,
                    "conditions": [
                        {"type": t, "status": "True", "lastTransitionTime": _now()}
                        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
                    ],
                },
            )
            deadline = spec.get("activeDeadlineSeconds")
            runs = [self._container(run, pod, c, volumes, hosts) for c in containers]
            try:
                codes = (
                    await asyncio.wait_for(asyncio.gather(*runs), deadline)
                    if deadline
                    else await asyncio.gather(*runs)
                )
            except TimeoutError:
                self._kill(run, signal.SIGKILL)
                await self._status(
                    run,
                    {
                        "phase": "Failed",
                        "reason": "DeadlineExceeded",
                        "message": "Pod was active on the node longer than the specified deadline",
                    },
                )
                return
            if run.deleting:
                return
            ended = {
                c["name"]: self._terminated(c, code, started)["state"]["terminated"]
                for c, code in zip(containers, codes, strict=True)
            }
            if policy == "Never" or (policy == "OnFailure" and not any(codes)):
                phase = "Succeeded" if not any(codes) else "Failed"
                statuses = [
                    {
                        "name": c["name"],
                        "image": c.get("image", ""),
                        "imageID": f"fake://{c.get('image', '')}",
                        "containerID": f"fake://{run.uid}/{c['name']}",
                        "ready": False,
                        "started": False,
                        "restartCount": restarts[c["name"]],
                        "state": {"terminated": ended[c["name"]]},
                    }
                    for c in containers
                ]
                await self._status(
                    run,
                    {
                        "phase": phase,
                        "containerStatuses": statuses,
                        "conditions": [
                            {
                                "type": "Ready",
                                "status": "False",
                                "reason": "PodCompleted",
                                "lastTransitionTime": _now(),
                            }
                        ],
                    },
                )
                return
            for c in containers:
                restarts[c["name"]] += 1
                last[c["name"]] = ended[c["name"]]

    @staticmethod
    def _terminated(container: Mapping[str, Any], code: int, started: str) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container.get("image", ""),
            "ready": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": code,
                    "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started,
                    "finishedAt": _now(),
                }
            },
        }

    async def _status(self, run: PodRun, status: Mapping[str, Any]) -> None:
        with contextlib.suppress(ApiException):  # deleted meanwhile
            await self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": dict(status)})

    async def _volumes(self, run: PodRun, pod: Mapping[str, Any]) -> dict[str, Path]:
        """Each pod volume as a local directory: claims as given, ConfigMaps and Secrets written out."""
        out: dict[str, Path] = {}
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume["name"]
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                if claim not in self.claims:
                    raise LookupError(f"persistentvolumeclaim {claim!r} not found")
                out[name] = self.claims[claim]
            elif "configMap" in volume or "secret" in volume:
                out[name] = await self._materialise(run, volume)
            elif "downwardAPI" in volume:
                out[name] = self._downward(run, pod, volume)
            elif "emptyDir" in volume:
                out[name] = run.folder / "volumes" / name
                out[name].mkdir(parents=True)
                out[name].chmod(0o777)
            else:
                raise LookupError(f"volume {name}: not a kind this kubelet mounts")
        return out

    def _downward(self, run: PodRun, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> Path:
        """A downward API volume of the pod's labels and annotations, as the kubelet writes it."""
        folder = run.folder / "volumes" / volume["name"]
        folder.mkdir(parents=True)
        meta = pod.get("metadata") or {}
        for item in volume["downwardAPI"].get("items") or []:
            field = item["fieldRef"]["fieldPath"]
            found = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", field)
            if found is None:
                raise LookupError(f"downward API field {field}: only one label or annotation here")
            value = (meta.get(found.group(1)) or {}).get(found.group(2), "")
            target = folder / item["path"]
            target.write_text(value)
            target.chmod(int(item.get("mode", volume["downwardAPI"].get("defaultMode", 0o644))))
        folder.chmod(0o755)
        return folder

    async def _materialise(self, run: PodRun, volume: Mapping[str, Any]) -> Path:
        folder = run.folder / "volumes" / volume["name"]
        folder.mkdir(parents=True)
        if "configMap" in volume:
            source = volume["configMap"]
            obj = await read_json(self.core.read_namespaced_config_map, source["name"], run.namespace)
            files = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            files.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
        else:
            source = volume["secret"]
            obj = await read_json(self.core.read_namespaced_secret, source["secretName"], run.namespace)
            files = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        mode = int(source.get("defaultMode", 0o644))
        items = source.get("items")
        chosen = {i["key"]: i["path"] for i in items} if items else {k: k for k in files}
        for key, path in chosen.items():
            target = folder / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(files[key])
            target.chmod(mode)
        folder.chmod(0o755)
        return folder

    async def _hosts(self, run: PodRun, pod: Mapping[str, Any]) -> str | None:
        """/etc/hosts for the pod: its own name and its subdomain's pods, all at 127.0.0.1."""
        spec = pod.get("spec") or {}
        subdomain = spec.get("subdomain")
        lines = ["127.0.0.1\tlocalhost", f"127.0.0.1\t{spec.get('hostname') or run.name}"]
        if subdomain:
            for other in (await read_json(self.core.list_namespaced_pod, run.namespace))["items"]:
                other_spec = other.get("spec") or {}
                if other_spec.get("subdomain") == subdomain and other_spec.get("hostname"):
                    lines.append(f"127.0.0.1\t{other_spec['hostname']}.{subdomain}")
        path = run.folder / "hosts"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)
        return str(path)

    async def _container(
        self,
        run: PodRun,
        pod: Mapping[str, Any],
        container: Mapping[str, Any],
        volumes: Mapping[str, Path],
        hosts: str | None,
    ) -> int:
        """Run one container to its end; its output goes to a new run's log. Returns its exit code."""
        key = (run.namespace, run.name, container["name"])
        log_run = Run(run.folder / f"{container['name']}-{len(self.runs.get(key, []))}.log")
        log_run.path.touch()
        self.runs.setdefault(key, []).append(log_run)
        try:
            argv = list(container.get("command") or []) + list(container.get("args") or [])
            if not argv or argv[0] not in self.programs:
                self._write(
                    log_run, f"process kubelet: no local program for {argv[:1] or 'the image entrypoint'}"
                )
                return 127
            argv[0] = self.programs[argv[0]]
            env = await self._env(run, pod, container)
            spec = pod.get("spec") or {}
            security = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
            uid, gid = int(security.get("runAsUser", 0)), int(security.get("runAsGroup", 0))
            groups = (
                [int(spec["securityContext"]["fsGroup"])]
                if (spec.get("securityContext") or {}).get("fsGroup") is not None
                else []
            )
            mounts = []
            for mount in container.get("volumeMounts") or []:
                source = volumes[mount["name"]]
                if mount.get("subPath"):
                    source = source / mount["subPath"]
                    source.mkdir(parents=True, exist_ok=True)  # as the kubelet makes a missing subPath
                target = mount["mountPath"]
                if not any(target == r or target.startswith(r + "/") for r in TMPFS_ROOTS):
                    os.makedirs(target, exist_ok=True)  # on this machine: see the module's docstring
                mounts.append((str(source), target, bool(mount.get("readOnly"))))
            cwd = container.get("workingDir") or "/"
            process = await asyncio.create_subprocess_exec(
                *argv,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=in_container(mounts, hosts, uid, gid, groups, cwd),
            )
            run.processes.append(process)
            self._started.append(process)
            assert process.stdout is not None
            with log_run.path.open("ab") as out:
                while True:
                    try:
                        line = await process.stdout.readuntil(b"\n")
                    except asyncio.IncompleteReadError as partial:
                        if partial.partial:
                            out.write(f"{_stamp()} ".encode() + partial.partial + b"\n")
                        break
                    except asyncio.LimitOverrunError as over:
                        line = await process.stdout.read(over.consumed)
                    out.write(
                        f"{_stamp()} ".encode() + line
                        if line.endswith(b"\n")
                        else f"{_stamp()} ".encode() + line + b"\n"
                    )
                    out.flush()
            return await process.wait()
        finally:
            log_run.ended.set()

    @staticmethod
    def _write(log_run: Run, text: str) -> None:
        with log_run.path.open("a") as out:
            out.write(f"{_stamp()} {text}\n")

    async def _env(self, run: PodRun, pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, str]:
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": spec.get("hostname") or meta["name"]}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = str(item["value"])
                continue
            source = item.get("valueFrom") or {}
            if "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                fields = {
                    "metadata.name": meta["name"],
                    "metadata.namespace": meta["namespace"],
                    "status.podIP": "127.0.0.1",
                    "spec.nodeName": spec.get("nodeName", ""),
                }
                for kind in ("labels", "annotations"):
                    for k, v in (meta.get(kind) or {}).items():
                        fields[f"metadata.{kind}['{k}']"] = v
                env[item["name"]] = fields.get(path, "")
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                cm = await self.core.read_namespaced_config_map(ref["name"], run.namespace)
                env[item["name"]] = (cm.data or {}).get(ref["key"], "")
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = await self.core.read_namespaced_secret(ref["name"], run.namespace)
                env[item["name"]] = base64.b64decode((secret.data or {}).get(ref["key"], "")).decode()
        return env

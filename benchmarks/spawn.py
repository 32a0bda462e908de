"""Spawn latency of lavahub's local spawner against JupyterHub's plain SimpleLocalProcessSpawner.

lavahub's spawner does more than the one it extends (template, project and quota checks,
GPU reservation, volume directories and links), and all of that sits between a user's
click and a working JupyterLab. This measures that cost end to end: from the REST spawn
request to JupyterLab answering `GET /user/<name>/api/status` with 200 through the proxy,
on two real hubs (each with its own configurable-http-proxy) started side by side. Spawns
alternate between the hubs (plain, lavahub, plain, ...) so machine drift hits both alike.
Exits 1 when the median ratio lavahub/plain exceeds --target.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lavahub.paths import proxy_command  # noqa: E402
from tests.hubclient import HubClient, free_port, log_tail, wait_for_hub  # noqa: E402

BIN = ROOT / ".venv" / "bin"
USER = "bench"
LAVAHUB_OPTIONS = {"template": "python", "project": "bench"}
TEMPLATE_IMAGE = "quay.io/jupyter/scipy-notebook:2025-01-06"  # recorded only: local runs this Python


def password(length: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def start_hub(name: str, cmd: list[str], cwd: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "LAVAHUB_CONFIG"},
        )  # fmt: skip
    return proc, log


def lavahub_hub(tmp: Path, user_password: str) -> tuple[list[str], Path, str]:
    port, hub_port, api_port = free_port(), free_port(), free_port()
    config = tmp / "lavahub.yaml"
    platform = {
        "data_dir": str(tmp / "lavahub-data"),
        "port": port,
        "hub_port": hub_port,
        "proxy_api_port": api_port,
        "auth": {"admin_password": password(40), "user_password": user_password},
        "projects": {"bench": {"members": [USER]}},
        "templates": [{"slug": "python", "display_name": "Python", "image": TEMPLATE_IMAGE}],
    }
    config.write_text(yaml.safe_dump(platform))
    return [str(BIN / "lavahub"), "up", "--config", str(config)], tmp, f"http://127.0.0.1:{port}"


def plain_hub(tmp: Path, user_password: str) -> tuple[list[str], Path, str]:
    port, hub_port, api_port = free_port(), free_port(), free_port()
    workdir = tmp / "plain"
    workdir.mkdir()
    settings: dict[str, Any] = {
        "JupyterHub.bind_url": f"http://127.0.0.1:{port}",
        "JupyterHub.hub_port": hub_port,
        "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{api_port}",
        "ConfigurableHTTPProxy.command": [proxy_command()],
        "ConfigurableHTTPProxy.pid_file": str(workdir / "proxy.pid"),
        "JupyterHub.db_url": f"sqlite:///{workdir / 'jupyterhub.sqlite'}",
        "JupyterHub.cookie_secret_file": str(workdir / "cookie_secret"),
        "JupyterHub.authenticator_class": "shared-password",
        "SharedPasswordAuthenticator.user_password": user_password,
        "Authenticator.allowed_users": {USER},
        "JupyterHub.spawner_class": "simple",
        "SimpleLocalProcessSpawner.home_dir_template": str(tmp / "plain-home" / "{username}"),
        "Spawner.default_url": "/lab",
        "Spawner.cmd": [str(BIN / "jupyterhub-singleuser")],
        "Spawner.args": ["--allow-root"] if os.geteuid() == 0 else [],
    }
    config = workdir / "jupyterhub_config.py"
    config.write_text("".join(f"c.{key} = {value!r}\n" for key, value in settings.items()))
    return [str(BIN / "jupyterhub"), "-f", str(config)], workdir, f"http://127.0.0.1:{port}"


def timed_spawn(client: HubClient, options: dict[str, Any]) -> float:
    start = time.perf_counter()
    response = client.spawn("", options)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"spawn refused: {response.status_code} {response.text}")
    client.wait_ready("")
    elapsed = time.perf_counter() - start
    client.stop("")
    return elapsed


def shut_down(procs: list[subprocess.Popen[bytes]], tmp: Path) -> None:
    """SIGTERM the hubs (they stop their proxy and servers), then kill whatever still runs in tmp."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for entry in Path("/proc").iterdir():  # leftovers: proxies and servers run with cwd in tmp
        try:
            if entry.name.isdigit() and Path(os.readlink(entry / "cwd")).is_relative_to(tmp):
                print(f"killing leftover process {entry.name}", file=sys.stderr)
                os.kill(int(entry.name), signal.SIGKILL)
        except OSError:
            pass


def p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=10, help="timed spawns per hub (default: 10)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed spawns per hub first (default: 1)")
    parser.add_argument("--target", type=float, default=1.15, help="max lavahub/plain median ratio")
    args = parser.parse_args()
    if args.spawns < 2:
        parser.error("--spawns must be at least 2")

    tmp = Path(tempfile.mkdtemp(prefix="lavahub-bench-")).resolve()
    procs: list[subprocess.Popen[bytes]] = []
    user_password = password(16)
    try:
        kinds: dict[str, tuple[HubClient, dict[str, Any]]] = {}
        hubs: dict[str, Callable[[Path, str], tuple[list[str], Path, str]]] = {
            "plain": plain_hub, "lavahub": lavahub_hub,
        }  # fmt: skip
        for name, make in hubs.items():
            cmd, cwd, url = make(tmp, user_password)
            proc, log = start_hub(name, cmd, cwd, tmp)
            procs.append(proc)
            wait_for_hub(url, proc, log)
            kinds[name] = (HubClient(url, USER, user_password), {} if name == "plain" else LAVAHUB_OPTIONS)
        times: dict[str, list[float]] = {name: [] for name in kinds}
        for i in range(args.warmup + args.spawns):
            for name, (client, options) in kinds.items():
                try:
                    elapsed = timed_spawn(client, options)
                except Exception:
                    tail = log_tail(tmp / f"{name}.log")
                    print(f"{name} spawn failed; end of its log:\n{tail}", file=sys.stderr)
                    raise
                if i >= args.warmup:
                    times[name].append(elapsed)
    finally:
        shut_down(procs, tmp)
        shutil.rmtree(tmp, ignore_errors=True)

    what = "REST request -> JupyterLab answering through the proxy"
    print(f"spawn latency, {args.spawns} spawns each ({what})")
    print(f"{'':14}  {'median':>7} {'p90':>7}")
    for name, samples in times.items():
        print(f"{name:14}  {statistics.median(samples):6.3f}s {p90(samples):6.3f}s")
    ratio = statistics.median(times["lavahub"]) / statistics.median(times["plain"])
    ok = ratio <= args.target
    print(f"{'ratio (median)':14}  {ratio:5.2f}   target <= {args.target:.2f}: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

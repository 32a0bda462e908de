"""A user's own JupyterLab, driven as a browser does: kernels and terminals over websockets.

The kernel and the terminal are the ones that JupyterLab starts, so they run as the
workspace runs (as its user's OS account, when the platform runs as root).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.hubclient import HubClient


def _ws_request(client: HubClient, path: str) -> HTTPRequest:
    url = client.server_url().replace("http://", "ws://", 1) + path
    return HTTPRequest(url, headers={"Authorization": f"token {client.token}"})


def run_cell(client: HubClient, code: str, timeout: float = 120) -> str:
    """Start a kernel in `client`'s JupyterLab, run `code`, return its stdout (and errors), stop it."""
    kernel = client.session.post(f"{client.server_url()}api/kernels", json={"name": "python3"}, timeout=30)
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]
    try:
        return asyncio.run(_execute(client, kernel_id, code, timeout))
    finally:
        client.session.delete(f"{client.server_url()}api/kernels/{kernel_id}", timeout=30)


async def _execute(client: HubClient, kernel_id: str, code: str, timeout: float) -> str:
    connection = await websocket_connect(_ws_request(client, f"api/kernels/{kernel_id}/channels"))
    msg_id = uuid.uuid4().hex
    request: dict[str, Any] = {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": client.user,
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }  # fmt: skip
    await connection.write_message(json.dumps(request))
    out: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(connection.read_message(), deadline - time.monotonic())
            if raw is None:
                raise RuntimeError("the kernel's websocket closed")
            message = json.loads(raw)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append(f"{content['ename']}: {content['evalue']}\n")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        raise TimeoutError(f"the cell did not finish in {timeout} s; so far: {''.join(out)!r}")
    finally:
        connection.close()


def run_in_terminal(client: HubClient, command: str, until: str, timeout: float = 60) -> str:
    """Open a JupyterLab terminal, type `command`, return what it shows once `until` appears."""
    made = client.session.post(f"{client.server_url()}api/terminals", timeout=30)
    made.raise_for_status()
    name = made.json()["name"]
    try:
        return asyncio.run(_type(client, name, command, until, timeout))
    finally:
        client.session.delete(f"{client.server_url()}api/terminals/{name}", timeout=30)


async def _type(client: HubClient, name: str, command: str, until: str, timeout: float) -> str:
    connection = await websocket_connect(_ws_request(client, f"terminals/websocket/{name}"))
    await connection.write_message(json.dumps(["stdin", command + "\r"]))
    shown = ""
    deadline = time.monotonic() + timeout
    try:
        while until not in shown.split(command, 1)[-1]:
            raw = await asyncio.wait_for(connection.read_message(), max(deadline - time.monotonic(), 0.01))
            if raw is None:
                break
            kind, *rest = json.loads(raw)
            if kind == "stdout":
                shown += rest[0]
        return shown
    finally:
        connection.close()

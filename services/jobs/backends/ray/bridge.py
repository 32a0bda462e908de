"""The jobs service's line to the dispatcher: a Ray driver in a process of its own.

The service never joins Ray itself: a Ray driver whose cluster goes away may take
its whole process with it, and the service must outlive a crashed head (its jobs
end `failed`, "lost when the cluster restarted"). So `Bridge` starts
`python -m services.jobs.backends.ray.bridge`, which joins the cluster once,
finds (or starts) the dispatcher and relays calls to it: one JSON object a line
each way, `{"id", "op", "args"}` in and `{"id", "result"}` or `{"id", "error"}` out.
The process ends with its stdin (the service gone, or done with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from ...waiting import within

OPS = ("describe", "submit", "cancel", "status", "changes", "usage")  # the dispatcher's methods
MAX_LINE = 64 * 2**20  # a `changes` answer for thousands of jobs fits
PR_SET_PDEATHSIG = 1
log = logging.getLogger(__name__)


class BridgeGone(Exception):
    """The bridge process ended or cannot be reached; the message says what it last said."""


class Bridge:
    """The service's side: start the bridge, then `await call(op, **args)` from any task."""

    def __init__(self, env: Mapping[str, str], address: str, node_ip: str | None = None):
        self.env, self.address, self.node_ip = dict(env), address, node_ip
        self._process: asyncio.subprocess.Process | None = None
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self._last_words: list[str] = []

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.returncode is None and self._reader is not None

    async def start(self, timeout: float) -> dict[str, Any]:
        """Start the bridge and wait until it has the dispatcher; returns `describe`'s answer."""
        await self.stop()
        env = {**self.env, "LAVAHUB_RAY_ADDRESS": self.address, "LAVAHUB_RAY_NODE_IP": self.node_ip or ""}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.jobs.backends.ray.bridge",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, limit=MAX_LINE,
        )  # fmt: skip
        self._last_words = []
        stderr = asyncio.ensure_future(self._keep_stderr(self._process))
        assert self._process.stdout is not None
        came, line = await within(self._process.stdout.readline(), timeout)
        if not came or not line:
            await self.stop()
            await within(stderr, 5)
            said = " | ".join(self._last_words[-3:]) or "nothing"
            raise BridgeGone(f"the Ray driver did not connect within {timeout:.0f} s; it said: {said}")
        self._reader = asyncio.ensure_future(self._read(self._process))
        ready: dict[str, Any] = json.loads(line)
        return ready

    async def stop(self) -> None:
        process, self._process = self._process, None
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        if process is not None:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                came, _ = await within(process.wait(), 10)
                if not came:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            # its pipes closed, so that its transport closes now, not when the garbage collector
            # finds it after the event loop has gone ("Event loop is closed")
            if process.stdin is not None:
                process.stdin.close()
            if process.stdout is not None:
                await within(process.stdout.read(), 5)
        self._fail_calls("the Ray driver was stopped")

    async def call(self, op: str, timeout: float = 30, **args: Any) -> Any:
        """The dispatcher's answer to `op(**args)`; `BridgeGone` if none comes within `timeout` s."""
        process = self._process
        if not self.alive or process is None or process.stdin is None:
            raise BridgeGone("the Ray driver is not running")
        call_id = next(self._ids)
        answer = self._calls[call_id] = asyncio.get_running_loop().create_future()
        try:
            process.stdin.write(json.dumps({"id": call_id, "op": op, "args": args}).encode() + b"\n")
            came, result = await within(answer, timeout)
        except (ConnectionError, RuntimeError) as e:
            raise BridgeGone(f"the Ray driver went away: {e}") from None
        finally:
            self._calls.pop(call_id, None)
        if not came:
            raise BridgeGone(f"the dispatcher did not answer {op} within {timeout:.0f} s")
        return result

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while line := await process.stdout.readline():
                answer = json.loads(line)
                future = self._calls.get(answer.get("id"))
                if future is None or future.done():
                    continue
                if "error" in answer:
                    future.set_exception(BridgeGone(f"the dispatcher failed: {answer['error']}"))
                else:
                    future.set_result(answer.get("result"))
        finally:
            self._fail_calls("the Ray driver ended: " + (" | ".join(self._last_words[-3:]) or "no word"))
            if self._reader is asyncio.current_task():
                self._reader = None

    async def _keep_stderr(self, process: asyncio.subprocess.Process) -> None:
        """Ray's own messages: logged, and the last few kept to say why the driver ended."""
        assert process.stderr is not None
        while line := await process.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._last_words = [*self._last_words[-9:], text[:500]]
                log.info("ray driver: %s", text)

    def _fail_calls(self, why: str) -> None:
        for future in self._calls.values():
            if not future.done():
                future.set_exception(BridgeGone(why))


# -- the bridge process ------------------------------------------------------------------
async def serve() -> None:
    import ray

    from . import dispatcher

    out = os.fdopen(os.dup(1), "wb")  # the answers' own descriptor: whatever Ray prints goes to stderr
    os.dup2(2, 1)
    await reachable(os.environ["LAVAHUB_RAY_ADDRESS"])  # Ray is imported: now wait for a starting head
    node_ip = os.environ.get("LAVAHUB_RAY_NODE_IP")  # a local head's: this driver stays on loopback
    ray.init(
        address=os.environ["LAVAHUB_RAY_ADDRESS"],
        _node_ip_address=node_ip or None,
        namespace=dispatcher.NAMESPACE,
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    actor = await asyncio.to_thread(dispatcher.find_or_start)
    described = await actor.describe.remote()
    actor.warm.remote()  # worker processes started now, not when the first cell waits for them
    out.write(json.dumps(described).encode() + b"\n")
    out.flush()

    def answer(reply: dict[str, Any]) -> None:
        out.write(json.dumps(reply).encode() + b"\n")
        out.flush()

    async def relay(request: dict[str, Any]) -> None:
        try:
            if request.get("op") not in OPS:
                raise ValueError(f"no such call: {request.get('op')!r}")
            result = await getattr(actor, request["op"]).remote(**request.get("args", {}))
            answer({"id": request.get("id"), "result": result})
        except Exception as e:
            answer({"id": request.get("id"), "error": f"{type(e).__name__}: {e}"[:2000]})

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    relays: set[asyncio.Task[None]] = set()
    while line := await reader.readline():
        task = asyncio.ensure_future(relay(json.loads(line)))
        relays.add(task)
        task.add_done_callback(relays.discard)


async def reachable(address: str) -> None:
    """Until the GCS at `address` (host:port) takes connections: the driver may start before its head."""
    host, _, port = address.rpartition(":")
    while True:
        try:
            _, writer = await asyncio.open_connection(host, int(port))
        except OSError:
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


def main() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # ends with the service
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve())
    os._exit(0)  # without Ray's shutdown, which may wait on a cluster that is gone


if __name__ == "__main__":
    main()

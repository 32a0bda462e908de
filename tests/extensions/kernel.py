"""A real IPython kernel driven over jupyter_client: run a cell, collect what it shows."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager


@dataclass
class Execution:
    """What one executed cell produced."""

    reply: dict[str, Any]
    streams: list[tuple[float, str, str]] = field(default_factory=list)  # (monotonic time, name, text)
    results: list[str] = field(default_factory=list)  # text/plain of execute_result messages
    errors: list[dict[str, Any]] = field(default_factory=list)  # ename, evalue, traceback

    @property
    def stdout(self) -> str:
        return "".join(text for _, name, text in self.streams if name == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(text for _, name, text in self.streams if name == "stderr")

    @property
    def everything(self) -> str:
        """All the text a person sees: streams, results and error renderings."""
        parts = [text for _, _, text in self.streams] + self.results
        parts += ["\n".join(error["traceback"]) for error in self.errors]
        return "\n".join(parts)

    @property
    def status(self) -> str:
        return self.reply["content"]["status"]

    def time_of(self, text: str) -> float:
        """When the first stream chunk containing `text` arrived."""
        for moment, _, chunk in self.streams:
            if text in chunk:
                return moment
        raise AssertionError(f"{text!r} never appeared in {self.everything!r}")


@dataclass
class Kernel:
    manager: KernelManager
    client: BlockingKernelClient

    def execute(
        self, code: str, timeout: float = 10.0, on_stream: Callable[[str], None] | None = None
    ) -> Execution:
        """Run `code`, collecting its output until the kernel is idle again; `on_stream` sees each chunk."""
        msg_id = self.client.execute(code)
        deadline = time.monotonic() + timeout
        streams: list[tuple[float, str, str]] = []
        results: list[Any] = []
        errors: list[Any] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"the cell did not finish within {timeout} s; output so far: {streams}")
            try:
                msg = self.client.get_iopub_msg(timeout=remaining)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                streams.append((time.monotonic(), content["name"], content["text"]))
                if on_stream:
                    on_stream(content["text"])
            elif kind == "execute_result":
                results.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                errors.append(content)
            elif kind == "status" and content["execution_state"] == "idle":
                break
        while True:
            reply = self.client.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
            if reply["parent_header"].get("msg_id") == msg_id:
                return Execution(reply, streams, results, errors)

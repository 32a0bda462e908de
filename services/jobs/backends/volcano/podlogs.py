"""Every worker's output, followed through the API server as its pods appear, kept as it streams.

One follower per container run (pod uid, restart count) reads `pods/log` with
`follow` and `timestamps`; lines wait in the job's buffer until the supervisor
takes them (`Backend.logs`), which is when the job's cursor is written: a
restarted service resumes each stream from its last timestamp, skipping the lines
it already handed over. Rank 0's result lines are taken out of the stream here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio.client import CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException
from lavahub_jupyter.runtime.contract import RESULT_MARKER

from .kubeapi import lines, raw
from .render import CONTAINER
from .states import worker_label

log = logging.getLogger(__name__)

CURSOR_FILE = "cursor.json"
RESULT_PART = "result.part"
RESULT_DONE = "result.pkl"
RESULT_TOO_LARGE = "result.too-large"
RETRY_SECONDS = 1.0


def instant(stamp: str) -> str:
    """A kubelet timestamp (RFC 3339, its fraction trimmed) as text that sorts as time does."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return f"{whole}.{fraction:0<9}Z"


def _seconds_since(stamp: str) -> int:
    """Whole seconds from an `instant` until now, rounded up."""
    import datetime as dt
    import math

    when = dt.datetime.fromisoformat(stamp.rstrip("Z")[:26]).replace(tzinfo=dt.UTC)
    return max(1, math.ceil((dt.datetime.now(dt.UTC) - when).total_seconds()))


@dataclass
class Stream:
    """Where one container run's log was read up to: its last timestamp, and lines at it."""

    last: str = ""
    at_last: int = 0
    done: bool = False


@dataclass
class JobStreams:
    """One job's followers, its lines not yet handed over, and its cursor on disk."""

    job_id: str
    folder: Path
    framework: str
    result_token: str | None
    max_result_bytes: int
    streams: dict[str, Stream] = field(default_factory=dict)  # "<pod uid>/<restarts>" -> cursor
    lines: list[str] = field(default_factory=list)
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    result_size: int = 0

    @classmethod
    def load(
        cls, job_id: str, folder: Path, framework: str, token: str | None, max_result: int
    ) -> JobStreams:
        streams = cls(job_id, folder, framework, token, max_result)
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            saved = json.loads((folder / CURSOR_FILE).read_text())
            streams.streams = {k: Stream(str(v[0]), int(v[1]), bool(v[2])) for k, v in saved.items()}
        return streams

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / (CURSOR_FILE + ".tmp")
        partial.write_text(json.dumps({k: [s.last, s.at_last, s.done] for k, s in self.streams.items()}))
        partial.replace(self.folder / CURSOR_FILE)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        self.save()
        return lines

    @property
    def following(self) -> bool:
        return any(not task.done() for task in self.tasks.values())

    # -- rank 0's result, out of its stream ---------------------------------------------------
    def result_line(self, text: str) -> str | None:
        """Takes a result line; returns the text before the marker (the cell's own), if any."""
        marker = f"{RESULT_MARKER} {self.result_token} "
        before, found, rest = text.partition(marker)
        if not found or not self.result_token:
            return text
        self.folder.mkdir(parents=True, exist_ok=True)
        part = self.folder / RESULT_PART
        if rest.startswith("end "):
            digest = rest[4:].strip()
            with contextlib.suppress(OSError):
                if (self.folder / RESULT_TOO_LARGE).exists():
                    part.unlink(missing_ok=True)
                else:
                    import base64

                    data = base64.b64decode(part.read_bytes())
                    if hashlib.sha256(data).hexdigest() == digest:
                        (self.folder / RESULT_DONE).write_bytes(data)
                    part.unlink()
        elif not (self.folder / RESULT_TOO_LARGE).exists():
            self.result_size += len(rest) * 3 // 4
            if self.result_size > self.max_result_bytes:
                (self.folder / RESULT_TOO_LARGE).write_text(str(self.result_size))
                part.unlink(missing_ok=True)
            else:
                with part.open("ab") as out:
                    out.write(rest.strip().encode())
        return before or None


class Followers:
    """Follows the log of every job pod the backend's pod informer reports."""

    def __init__(self, core: CoreV1Api, namespace: str, state_dir: Path, max_result_bytes: int) -> None:
        self.core = core
        self.namespace = namespace
        self.state_dir = state_dir
        self.max_result_bytes = max_result_bytes
        self.jobs: dict[str, JobStreams] = {}

    def job(self, job_id: str, framework: str = "python", token: str | None = None) -> JobStreams:
        if job_id not in self.jobs:
            folder = self.state_dir / job_id
            self.jobs[job_id] = JobStreams.load(job_id, folder, framework, token, self.max_result_bytes)
        streams = self.jobs[job_id]
        streams.framework, streams.result_token = framework, token or streams.result_token
        return streams

    def pod_seen(self, job_id: str, framework: str, token: str | None, pod: Mapping[str, Any]) -> None:
        """A job pod as the informer saw it: start following each container run that has started."""
        status = pod.get("status") or {}
        meta = pod.get("metadata") or {}
        for container in status.get("containerStatuses") or []:
            if container.get("name") != CONTAINER:
                continue
            state = container.get("state") or {}
            if not ("running" in state or "terminated" in state):
                continue
            key = f"{meta.get('uid')}/{container.get('restartCount', 0)}"
            streams = self.job(job_id, framework, token)
            stream = streams.streams.setdefault(key, Stream())
            task = streams.tasks.get(key)
            if stream.done or (task is not None and not task.done()):
                continue
            label, rank = worker_label(framework, pod)
            run = int(container.get("restartCount", 0))
            streams.tasks[key] = asyncio.ensure_future(
                self._follow(streams, stream, str(meta.get("name")), run, label, rank == 0)
            )

    async def _follow(
        self, streams: JobStreams, stream: Stream, pod: str, run: int, label: str, rank0: bool
    ) -> None:
        """Read one container run's log to its end, resuming after a dropped connection."""
        prefix = f"[{label}] "
        known: int | None = run  # the informer's pod just said this run is the current one
        while not stream.done:
            try:
                current, known = (known, None) if known is not None else (await self._restarts(pod), None)
                if current is None:
                    stream.done = True  # the pod is gone: what it wrote was read
                    break
                kwargs: dict[str, Any] = {"container": CONTAINER, "timestamps": True}
                if current > run:
                    kwargs["previous"] = True  # this run ended and the container runs again
                else:
                    kwargs["follow"] = True
                if stream.last:  # resume: this client has no sinceTime; the lines before `last` are skipped
                    kwargs["since_seconds"] = _seconds_since(stream.last) + 2
                response = await raw(self.core.read_namespaced_pod_log, pod, self.namespace, **kwargs)
                seen_at_last = 0
                async with response:
                    async for line in lines(response):
                        stamp, _, text = line.decode(errors="replace").partition(" ")
                        stamp = instant(stamp)
                        if stream.last and stamp < stream.last:
                            continue
                        if stamp == stream.last:
                            seen_at_last += 1
                            if seen_at_last <= stream.at_last:
                                continue  # handed over before a reconnect or a restart of ours
                            stream.at_last += 1
                        else:
                            stream.last, stream.at_last = stamp, 1
                        kept = streams.result_line(text) if rank0 else text
                        if kept is not None:
                            streams.lines.append(prefix + kept)
                stream.done = kwargs.get("previous") or await self._ended(pod, run)
            except ApiException as e:
                if e.status == 404:  # the pod is gone: what it wrote was read
                    stream.done = True
                    break
                if e.status != 400:  # 400: the container is not started yet
                    log.warning("Following %s's log: %s", pod, e.reason)
            except (TimeoutError, OSError, aiohttp.ClientError) as e:
                log.warning("Following %s's log: %r; again", pod, e)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the job's log: log it, and follow again
                log.exception("Following %s's log failed; again", pod)
            if not stream.done:
                await asyncio.sleep(RETRY_SECONDS)

    async def _restarts(self, pod: str) -> int | None:
        """The container's restart count now; None once the pod is gone."""
        try:
            current = await self.core.read_namespaced_pod(pod, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        for status in current.status.container_statuses or []:
            if status.name == CONTAINER:
                return int(status.restart_count or 0)
        return 0

    async def _ended(self, pod: str, run: int) -> bool:
        """Whether container run `run`, whose stream just ended, has exited (else the stream dropped)."""
        try:
            current = await self.core.read_namespaced_pod(pod, self.namespace)
        except ApiException as e:
            return e.status == 404
        for status in current.status.container_statuses or []:
            if status.name == CONTAINER:
                return int(status.restart_count or 0) > run or status.state.terminated is not None
        return current.status.phase in ("Succeeded", "Failed")

    async def take(self, job_id: str, *, final: bool) -> list[str]:
        """The job's new lines; once it ended, after its followers have finished (a few seconds at most)."""
        streams = self.jobs.get(job_id)
        if streams is None:
            return []
        if final:
            pending = [t for t in streams.tasks.values() if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=5)
        return streams.take()

    def result_file(self, job_id: str) -> tuple[Path, bool]:
        """Rank 0's result file, and whether it was too large to keep."""
        folder = self.state_dir / job_id
        return folder / RESULT_DONE, (folder / RESULT_TOO_LARGE).exists()

    def forget(self, job_id: str) -> None:
        streams = self.jobs.pop(job_id, None)
        if streams is not None:
            for task in streams.tasks.values():
                task.cancel()

    async def close(self) -> None:
        for job_id in list(self.jobs):
            self.forget(job_id)
        await asyncio.sleep(0)

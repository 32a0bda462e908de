"""Watching a job from the cell that started it: state changes, why it waits, its logs.

A background thread reads the followed log stream and hands complete lines to
the main thread through a queue; the main thread prints them, polls the job's
state about once a second, and asks why while the job is pending. All printing
and every decision happen on the main thread, so output lands in the cell that
started the job and Ctrl-C / "interrupt kernel" reaches the code that can
cancel the job.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from .client import Job, JobsClient, JobsError

POLL_INTERVAL = 1.0
"""Seconds between two looks at the job's state."""

SETTLE_TIME = 3.0
"""Once the job has ended, how long its log stream may take to end before the rest is fetched."""

MAX_RECONNECT_DELAY = 5.0
POLL_FAILURES_TOLERATED = 10
"""Consecutive failed state polls (service restarting, network blip) before giving up."""


def short_id(job_id: str) -> str:
    return job_id if len(job_id) <= 8 else job_id[:8] + "…"


def duration(job: Job) -> float | None:
    """Seconds from start to finish, when both are known."""
    try:
        started = datetime.fromisoformat(job.started) if job.started else None
        finished = datetime.fromisoformat(job.finished) if job.finished else None
        if started and finished:
            return (finished - started).total_seconds()
    except (TypeError, ValueError):
        pass
    return None


@dataclass(frozen=True)
class StreamEnded:
    """The service ended the log stream (it does so when the job has ended)."""


@dataclass(frozen=True)
class StreamDropped:
    """The log stream broke off, or could not be opened."""

    error: JobsError


class LogFollower:
    """Reads one followed log stream on a daemon thread.

    Its queue yields each line, then exactly one ``StreamEnded`` or ``StreamDropped``.
    """

    def __init__(self, client: JobsClient, job_id: str, since: int, delay: float = 0.0) -> None:
        self._client = client
        self._job_id = job_id
        self._since = since
        self._delay = delay
        self._items: queue.SimpleQueue[str | StreamEnded | StreamDropped] = queue.SimpleQueue()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lavahub-logs-{job_id}", daemon=True)
        self._thread.start()

    def get(self, timeout: float) -> str | StreamEnded | StreamDropped | None:
        """The next item, or None when nothing came within ``timeout`` seconds."""
        try:
            return self._items.get(timeout=timeout)
        except queue.Empty:
            return None

    def get_nowait(self) -> str | StreamEnded | StreamDropped | None:
        try:
            return self._items.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop handing out lines. The thread itself ends with the stream (the service ends it
        when the job has ended) or at its read timeout: closing a response that another thread
        is reading would block on the reader's lock until then anyway."""
        self._stopped.set()

    def _run(self) -> None:
        if self._delay and self._stopped.wait(self._delay):
            return
        try:
            with self._client.follow_logs(self._job_id, since=self._since) as stream:
                for line in stream:
                    if self._stopped.is_set():
                        return
                    self._items.put(line)
        except JobsError as exc:
            self._items.put(StreamDropped(exc))
        except Exception as exc:  # never die silently: the main thread would wait forever
            self._items.put(StreamDropped(JobsError("the log stream failed", f"{type(exc).__name__}: {exc}")))
        else:
            self._items.put(StreamEnded())


class JobWatcher:
    """Shows a job's state changes and logs in the cell until it ends; ``run`` answers the ended job."""

    def __init__(
        self,
        client: JobsClient,
        job: Job,
        *,
        out: TextIO | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.client = client
        self.job = job
        self.lines_seen = 0
        self._out = out
        self._poll_interval = poll_interval
        self._shown_state: str | None = None
        self._shown_summary: str | None = None
        self._poll_failures = 0
        self._follower: LogFollower | None = None

    # -- output ------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self._out or sys.stdout, flush=True)

    def _show_line(self, line: str) -> None:
        self.lines_seen += 1
        self.say(line)

    def _show_state(self) -> None:
        job = self.job
        if job.state == "pending":
            summary = self._pending_summary()
            if job.state != self._shown_state or (summary and summary != self._shown_summary):
                self.say(f"job {short_id(job.id)} pending" + (f": {summary}" if summary else ""))
                self._shown_summary = summary or self._shown_summary
        elif job.state != self._shown_state:
            text = f"job {short_id(job.id)} {job.state}"
            seconds = duration(job) if job.state == "succeeded" else None
            if seconds is not None:
                text += f" in {seconds:.1f} s"
            self.say(text)
        self._shown_state = job.state

    def _pending_summary(self) -> str | None:
        try:
            return self.client.explain(self.job.id).summary or None
        except JobsError:
            return None  # an explanation is a courtesy: never fail the watch for it

    # -- the loop ------------------------------------------------------------------

    def run(self) -> Job:
        try:
            return self._run()
        finally:
            if self._follower is not None:
                self._follower.close()

    def _run(self) -> Job:
        if not self.job.ended:  # an end is shown after the last log line
            self._show_state()
        reconnect_delay = 0.0
        follower = self._follower = LogFollower(self.client, self.job.id, since=0)
        next_poll = time.monotonic() + self._poll_interval
        ended_at: float | None = None
        while True:
            item = follower.get(timeout=0.1)
            if isinstance(item, str):
                if self.job.state == "pending":  # logs mean it runs: say so before the first line
                    self._poll()
                    next_poll = time.monotonic() + self._poll_interval
                self._show_line(item)
                reconnect_delay = 0.0
            elif item is not None:  # the stream is over: ended by the service, or dropped
                if isinstance(item, StreamDropped) and _is_refusal(item.error):
                    raise item.error
                self._poll()
                if self.job.ended:
                    if isinstance(item, StreamDropped):
                        self._fetch_rest()
                    self._show_state()
                    return self.job
                if isinstance(item, StreamDropped):
                    reconnect_delay = min(max(2 * reconnect_delay, 0.5), MAX_RECONNECT_DELAY)
                else:
                    reconnect_delay = max(reconnect_delay, 0.5)  # ended early: don't spin
                follower = self._follower = LogFollower(
                    self.client, self.job.id, since=self.lines_seen, delay=reconnect_delay
                )
                next_poll = time.monotonic() + self._poll_interval
                continue
            now = time.monotonic()
            if now >= next_poll:
                self._poll()
                next_poll = time.monotonic() + self._poll_interval
                if self.job.ended:
                    ended_at = ended_at or now
                    if now - ended_at >= SETTLE_TIME:
                        # the service should have ended the stream by now; take what is left
                        follower.close()
                        self._fetch_rest()
                        self._show_state()
                        return self.job

    def _poll(self) -> None:
        try:
            self.job = self.client.get_job(self.job.id)
        except JobsError as exc:
            self._poll_failures += 1
            if _is_refusal(exc) or self._poll_failures >= POLL_FAILURES_TOLERATED:
                raise
            return
        self._poll_failures = 0
        if not self.job.ended:  # the final state is shown after the last log line
            self._show_state()

    def _fetch_rest(self) -> None:
        """Print the lines the stream did not deliver."""
        for line in self.client.logs(self.job.id, since=self.lines_seen):
            self._show_line(line)


def _is_refusal(error: JobsError) -> bool:
    """A 4xx answer will not get better by asking again (429, too many requests, will)."""
    return error.status is not None and 400 <= error.status < 500 and error.status != 429

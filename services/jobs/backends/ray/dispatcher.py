"""The dispatcher: one detached Ray actor that places every job's gang and runs its workers.

Why an actor, not a Ray job per cell: a Ray job costs a supervisor actor and a
driver process that starts Python and imports Ray, seconds on a small machine,
for every cell. The dispatcher is warm: a job is a placement group (all of its
workers or none, as Volcano's gang) and one `gang.run_worker` task per bundle,
about 20 ms on a warm head. It is detached, so it and the gangs it owns outlive
a restarted jobs service, which finds it again by name. It keeps each job's state
in memory and answers `changes` as soon as something changed, so the service
learns of a job's end without polling.

Placement groups are kept for KEEP_SECONDS for the next job of the same shape (a
person re-running a cell, a burst of jobs): removing one and creating the next at
once costs about a second while Ray frees the bundles. Kept groups give way
whenever a new group would not fit beside them, `usage` counts them as free, and
after KEEP_SECONDS they are removed, so an idle platform holds nothing of a
cluster that others may share.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import signal
import socket
import time
from collections import Counter, OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from . import gang

NAME = "lavahub-dispatcher"
NAMESPACE = "lavahub"
KEPT_GROUPS = 8  # placement groups kept for later jobs, at most
WARM = 2  # worker processes started with the dispatcher, for the first cell's workers
KEEP_SECONDS = 3.0  # how long a placement group waits for the next job of its shape
KEPT_RECORDS = 10_000  # ended jobs remembered for a service that asks late
CANCEL_GRACE = 5.0  # seconds a stopped worker has to stop its cell (and its leftovers) before it is killed
log = logging.getLogger(__name__)

UNFINISHED = ("pending", "running")  # a record's states before its end

Shape = tuple[tuple[tuple[str, float], ...], ...]  # a gang's bundles, hashable


def code_version() -> str:
    """A digest of the code the dispatcher runs: a running one from older code is replaced
    (once it runs nothing), so that `make up` after a change never talks to stale code."""
    digest = hashlib.sha256()
    for module in ("dispatcher.py", "gang.py", "private.py"):
        digest.update((Path(__file__).with_name(module)).read_bytes())
    return digest.hexdigest()[:16]


def bundles(spec: dict[str, Any]) -> list[dict[str, float]]:
    """One bundle per worker: its CPUs, and its GPUs and memory where it asks for them."""
    bundle = {"CPU": float(spec["cpus"])}
    if spec["gpus"]:
        bundle["GPU"] = float(spec["gpus"])
    if spec["memory"]:
        bundle["memory"] = float(spec["memory"])
    return [dict(bundle) for _ in range(spec["workers"])]


def shape_of(wanted: list[dict[str, float]]) -> Shape:
    return tuple(tuple(sorted(b.items())) for b in wanted)


def ended_worker(rank: int, code: int) -> tuple[int, str]:
    """A worker's exit as the job's exit code and reason (a signal as 128 + its number)."""
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return 128 - code, f"worker {rank} was killed by {name}"
    return code, f"worker {rank} exited with code {code}"


@dataclass
class Record:
    """A job as the dispatcher knows it; `version` is the dispatcher's count at its last change."""

    state: str = "pending"  # pending, running, succeeded, failed, cancelled
    exit_code: int | None = None
    reason: str | None = None
    failed_worker: int | None = None
    version: int = 0


@dataclass
class Kept:
    """A placement group between two jobs, with its bundles' nodes (found once)."""

    group: PlacementGroup
    nodes: list[str]
    wanted: list[dict[str, float]] = field(default_factory=list)


class Dispatcher:
    """The actor's class (made a Ray actor by `ActorClass` below, so this module imports without Ray
    starting anything). Every method is a coroutine: one event loop, many jobs at once."""

    def __init__(self) -> None:
        self.records: OrderedDict[str, Record] = OrderedDict()
        self.runs: dict[str, asyncio.Task[None]] = {}
        self.stopping: set[str] = set()  # jobs whose workers are being stopped
        self.kept: OrderedDict[int, tuple[Shape, Kept]] = OrderedDict()
        self.keys = itertools.count()
        self.waiting: dict[Shape, list[asyncio.Future[Kept]]] = {}  # jobs whose group is not placed yet
        self.version = 0
        self.changed = asyncio.Event()
        self.started = time.time()
        self.code = code_version()

    # -- what the service calls ------------------------------------------------------------
    async def describe(self) -> dict[str, Any]:
        return {"code": self.code, "running": len(self.runs), "started": self.started}

    async def warm(self, workers: int = WARM) -> None:
        """Have Ray start `workers` worker processes now (a trivial task each, all at once)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*(gang.node_address.remote() for _ in range(workers)))

    async def submit(self, job_id: str, job_dir: str, spec: dict[str, Any]) -> None:
        """Start placing the job's gang; returns at once. A job submitted twice runs once."""
        if job_id in self.records:
            return
        self._set(job_id, Record())
        self.runs[job_id] = asyncio.ensure_future(self._run(job_id, Path(job_dir), spec))

    async def cancel(self, job_id: str) -> None:
        """Stop every worker of the job; its record says `cancelled` at once. Idempotent."""
        record = self.records.get(job_id)
        if record is None or record.state not in UNFINISHED:
            return
        self._set(job_id, Record("cancelled", reason="cancelled"))
        run = self.runs.get(job_id)
        if run is not None:
            run.cancel()

    async def status(self, job_ids: list[str]) -> dict[str, dict[str, Any] | None]:
        return {job_id: self._said(job_id) for job_id in job_ids}

    async def changes(self, since: int, wait: float) -> dict[str, Any]:
        """The records changed after version `since`, as soon as there is one (or none after `wait`
        seconds), with this dispatcher's `epoch`: a new dispatcher counts from 0 again."""
        if self.version <= since and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), wait)
        changed = {job_id: asdict(r) for job_id, r in self.records.items() if r.version > since}
        return {"epoch": self.started, "version": self.version, "changed": changed}

    async def usage(self) -> dict[str, dict[str, float]]:
        """The cluster's resources, total and free, with kept placement groups counted as free."""
        total, free = ray.cluster_resources(), ray.available_resources()  # type: ignore[no-untyped-call]
        for _, kept in self.kept.values():
            for bundle in kept.wanted:
                for key, amount in bundle.items():
                    free[key] = free.get(key, 0.0) + amount
        keys = ("CPU", "GPU", "memory")
        return {
            "total": {key: float(total.get(key, 0.0)) for key in keys},
            "free": {key: float(free.get(key, 0.0)) for key in keys},
        }

    # -- one job ---------------------------------------------------------------------------
    def _said(self, job_id: str) -> dict[str, Any] | None:
        record = self.records.get(job_id)
        return asdict(record) if record is not None else None

    def _set(self, job_id: str, record: Record) -> None:
        self.version += 1
        record.version = self.version
        self.records[job_id] = record
        self.records.move_to_end(job_id)
        while len(self.records) > KEPT_RECORDS:
            oldest = next(iter(self.records))
            if self.records[oldest].state in UNFINISHED:
                break
            del self.records[oldest]
        self.changed.set()
        self.changed = asyncio.Event()

    def _end(self, job_id: str, state: str, facts: dict[str, Any] | None = None) -> None:
        """The job ended (when it has not already, by a cancel): every worker has stopped by now, so
        the files hold all its lines."""
        facts = facts or {}
        if self.records.get(job_id, Record()).state in UNFINISHED:
            self._set(job_id, Record(state, **facts))

    async def _run(self, job_id: str, job_dir: Path, spec: dict[str, Any]) -> None:
        owner = gang.owner_of(spec["account"])
        wanted = bundles(spec)
        kept: Kept | None = None
        refs: dict[ray.ObjectRef[int], int] = {}
        reusable = False
        try:
            gang.launcher_log(job_dir, owner, f"waiting for all {len(wanted)} workers to be placed together")
            kept = await self._take(wanted)
            master = (kept.nodes[0], await self._free_port(kept))
            local_ranks, seen = [], Counter[str]()
            for node in kept.nodes:
                local_ranks.append(seen[node])
                seen[node] += 1
            self._set(job_id, Record("running"))
            gang.launcher_log(
                job_dir, owner, f"all {len(wanted)} workers placed; rank 0 at {master[0]}:{master[1]}"
            )
            for rank in range(len(wanted)):
                env = gang.worker_env(job_dir, spec, rank, len(wanted), local_ranks[rank], master)
                ref = gang.run_worker.options(
                    scheduling_strategy=PlacementGroupSchedulingStrategy(
                        kept.group, placement_group_bundle_index=rank
                    ),
                    num_cpus=spec["cpus"],
                    num_gpus=spec["gpus"],
                    memory=spec["memory"] or None,
                ).remote(str(job_dir), rank, env, spec)
                refs[ref] = rank
            ended = await self._wait(refs)
            await self._stop(job_id, refs)  # a failed gang's other workers: their last lines first
            self._end(job_id, *ended)
            reusable = True
        except asyncio.CancelledError:
            pass  # cancelled: its record already says so
        except Exception as e:  # Ray failed us: the job fails, saying so, and the dispatcher goes on
            log.exception("job %s failed in the dispatcher", job_id)
            self._end(job_id, "failed", {"reason": f"the dispatcher could not run it: {e}"})
        finally:
            self.runs.pop(job_id, None)
            await self._stop(job_id, refs)
            if kept is not None:
                self._give_back(kept, reusable)

    async def _wait(self, refs: dict[ray.ObjectRef[int], int]) -> tuple[str, dict[str, Any]]:
        """Until every worker exits 0 (succeeded) or one fails (the gang fails); the end's facts."""
        pending = {asyncio.ensure_future(ref): rank for ref, rank in refs.items()}
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                rank = pending.pop(future)
                try:
                    code = future.result()
                except Exception:  # its Ray worker process died (killed, out of memory)
                    code, reason = 137, f"worker {rank}'s process was killed (its Ray worker died)"
                else:
                    if code == 0:
                        continue
                    code, reason = ended_worker(rank, code)
                return "failed", {"exit_code": code, "reason": reason, "failed_worker": rank}
        return "succeeded", {"exit_code": 0}

    async def wanted(self, job_id: str) -> bool:
        """Whether the job's workers should go on (each asks, every `gang.STOP_POLL` s)."""
        record = self.records.get(job_id)
        return record is not None and record.state in UNFINISHED and job_id not in self.stopping

    async def _stop(self, job_id: str, refs: dict[ray.ObjectRef[int], int]) -> None:
        """Stop workers still running: they stop their cells when they next ask `wanted` (and clean
        up); one that does not end within CANCEL_GRACE is killed."""
        running = [ref for ref in refs if not _done(ref)]
        if not running:
            return
        self.stopping.add(job_id)
        try:
            waiting = [asyncio.ensure_future(_settle(ref)) for ref in running]
            await asyncio.wait(waiting, timeout=CANCEL_GRACE)
            for ref in running:
                if not _done(ref):
                    ray.cancel(ref, force=True)  # hung, so not completing: Ray's race cannot happen
        finally:
            self.stopping.discard(job_id)

    # -- placement groups --------------------------------------------------------------------
    async def _take(self, wanted: list[dict[str, float]]) -> Kept:
        """A placed group for these bundles: a kept one of the same shape, else a new one, or
        the group of a job of the same shape that ends first (kept groups that would stand in
        a new one's way are removed first)."""
        shape = shape_of(wanted)
        for key, (kept_shape, kept) in list(self.kept.items()):
            if kept_shape == shape:
                del self.kept[key]
                return kept
        if self.kept and not self._fits(wanted):
            self._drop_kept(len(self.kept))
        group = placement_group(wanted, strategy="PACK")
        handed: asyncio.Future[Kept] = asyncio.get_running_loop().create_future()
        waiters = self.waiting.setdefault(shape, [])
        waiters.append(handed)
        placed = asyncio.ensure_future(_settle(group.ready()))
        try:
            first: set[asyncio.Future[Any]] = {placed, handed}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if handed.done():  # a group handed over by a job that ended: ours is not needed
                remove_placement_group(group)
                return handed.result()
            nodes = await asyncio.gather(
                *(
                    gang.node_address.options(
                        scheduling_strategy=PlacementGroupSchedulingStrategy(
                            group, placement_group_bundle_index=i
                        )
                    ).remote()
                    for i in range(len(wanted))
                )
            )
        except BaseException:
            remove_placement_group(group)
            if handed.done() and not handed.cancelled():
                self._give_back(handed.result(), True)  # cancelled as it came: the next one's
            raise
        finally:
            placed.cancel()
            if handed in waiters:
                waiters.remove(handed)
            handed.cancel()
        return Kept(group, [ip for ip, _ in nodes], wanted)

    def _fits(self, wanted: list[dict[str, float]]) -> bool:
        free = ray.available_resources()  # type: ignore[no-untyped-call]
        need: Counter[str] = Counter()
        for bundle in wanted:
            need.update(bundle)
        return all(free.get(key, 0.0) >= amount for key, amount in need.items())

    def _give_back(self, kept: Kept, reusable: bool) -> None:
        """A job's group after it ended: to the next job waiting for that shape; else kept for
        KEEP_SECONDS, unless jobs of other shapes wait for room (then removed at once)."""
        if reusable:
            for waiter in self.waiting.get(shape_of(kept.wanted), []):
                if not waiter.done():
                    waiter.set_result(kept)
                    return
        if not reusable or any(self.waiting.values()):
            remove_placement_group(kept.group)
            return
        key = next(self.keys)  # never reused: a timer expires only the keeping it was set for
        self.kept[key] = (shape_of(kept.wanted), kept)
        self._drop_kept(len(self.kept) - KEPT_GROUPS)
        asyncio.get_running_loop().call_later(KEEP_SECONDS, self._expire, key)

    def _expire(self, key: int) -> None:
        found = self.kept.pop(key, None)
        if found is not None:
            remove_placement_group(found[1].group)

    def _drop_kept(self, count: int) -> None:
        for _ in range(max(0, count)):
            _, (_, oldest) = self.kept.popitem(last=False)
            remove_placement_group(oldest.group)

    async def _free_port(self, kept: Kept) -> int:
        """A free port for rank 0's MASTER_PORT: found here when rank 0's node is this one."""
        if kept.nodes[0] == ray.util.get_node_ip_address():  # type: ignore[no-untyped-call]
            with socket.socket() as s:
                s.bind(("", 0))
                port: int = s.getsockname()[1]
                return port
        strategy = PlacementGroupSchedulingStrategy(kept.group, placement_group_bundle_index=0)
        _, port = await gang.node_address.options(scheduling_strategy=strategy).remote()
        return int(port)


def _done(ref: ray.ObjectRef[Any]) -> bool:
    ready, _ = ray.wait([ref], timeout=0)
    return bool(ready)


async def _settle(ref: ray.ObjectRef[Any]) -> None:
    with contextlib.suppress(Exception):
        await ref


ActorClass = ray.remote(num_cpus=0, max_concurrency=10_000)(Dispatcher)  # type: ignore[call-overload]  # ray's stubs lack actor options


def find_or_start() -> Any:
    """The running dispatcher (replaced if it runs older code and no job), else a new one."""
    code = code_version()
    with contextlib.suppress(ValueError):
        actor = ray.get_actor(NAME, namespace=NAMESPACE)
        described: dict[str, Any] = ray.get(actor.describe.remote())  # type: ignore[assignment]  # untyped actor
        if described["code"] == code or described["running"]:
            return actor
        log.info("replacing the dispatcher, which runs older code")
        ray.kill(actor)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                ray.get_actor(NAME, namespace=NAMESPACE)
            except ValueError:
                break
            time.sleep(0.1)
    return ActorClass.options(
        name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()

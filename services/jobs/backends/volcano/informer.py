"""One list-then-watch of one kind of object, kept as plain dicts: the backend's view of the cluster.

A watch that drops (or whose resourceVersion expired, 410) lists again; every
change calls `on_change(obj, deleted)`, so the backend reacts to one object
without polling all of them. An informer whose identity may not list its kind
(a 403: the chart's optional rules left out) stops, `forbidden`: what it would
have told stays unknown rather than retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

from .kubeapi import read_json, watch_events

log = logging.getLogger(__name__)

OnChange = Callable[[dict[str, Any], bool], None]


def ignore(obj: dict[str, Any], deleted: bool) -> None:
    """For an informer that is only a cache: nothing reacts to its changes."""


WATCH_SECONDS = 240  # the server ends a watch after this; the informer lists again
RETRY_SECONDS = 1.0


class Informer:
    """`objects` by name once `synced`; `list_call(**kwargs)` is a kubernetes_asyncio list method."""

    def __init__(
        self, what: str, list_call: Callable[..., Awaitable[Any]], on_change: OnChange, **kwargs: Any
    ):
        self.what = what
        self.list_call = list_call
        self.kwargs = kwargs
        self.on_change = on_change
        self.objects: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.failures = 0
        self.forbidden = False

    async def run(self) -> None:
        while True:
            try:
                version = await self._list()
                await self._watch(version)
            except asyncio.CancelledError:
                raise
            except ApiException as e:
                if e.status == 403 and not self.synced.is_set():
                    log.warning("Not watching %s: this identity may not list them (%s)", self.what, e.reason)
                    self.forbidden = True
                    self.synced.set()
                    return
                if e.status != 410:
                    self.failures += 1
                    log.warning("Watching %s: %s %s; listing again", self.what, e.status, e.reason)
                    await asyncio.sleep(RETRY_SECONDS)
            except (OSError, TimeoutError, aiohttp.ClientError, ValueError) as e:
                self.failures += 1
                log.warning("Watching %s: %r; listing again", self.what, e)
                await asyncio.sleep(RETRY_SECONDS)

    async def _list(self) -> str:
        listing = await read_json(self.list_call, **self.kwargs)
        fresh = {item["metadata"]["name"]: item for item in listing.get("items", [])}
        for name, obj in self.objects.items():
            if name not in fresh:
                self.on_change(obj, True)
        self.objects = fresh
        for obj in fresh.values():
            self.on_change(obj, False)
        self.synced.set()
        self.failures = 0
        return str(listing["metadata"].get("resourceVersion", ""))

    async def _watch(self, version: str) -> None:
        events = watch_events(
            self.list_call, resource_version=version, timeout_seconds=WATCH_SECONDS, **self.kwargs
        )
        async with contextlib.aclosing(events):
            async for event in events:
                obj = event.get("object")
                if event.get("type") == "ERROR" or not isinstance(obj, dict):
                    code = obj.get("code") if isinstance(obj, dict) else None
                    raise ApiException(status=code or 500, reason=str(obj))
                name = obj["metadata"]["name"]
                if event["type"] == "DELETED":
                    self.objects.pop(name, None)
                    self.on_change(obj, True)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self.objects[name] = obj
                    self.on_change(obj, False)

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
IndexKey = Callable[[dict[str, Any]], str | None]


def ignore(obj: dict[str, Any], deleted: bool) -> None:
    """For an informer that is only a cache: nothing reacts to its changes."""


WATCH_SECONDS = 240  # the server ends a watch after this; the informer lists again
RETRY_SECONDS = 1.0


class Informer:
    """`objects` by name once `synced`; `list_call(**kwargs)` is a kubernetes_asyncio list method.

    With an `index` (an object's key: a pod's job, an event's object), `indexed(key)` answers
    the objects of one key without looking at the others, as client-go's indexers do.
    """

    def __init__(
        self,
        what: str,
        list_call: Callable[..., Awaitable[Any]],
        on_change: OnChange,
        *,
        index: IndexKey | None = None,
        **kwargs: Any,
    ):
        self.what = what
        self.list_call = list_call
        self.kwargs = kwargs
        self.on_change = on_change
        self.index = index
        self.objects: dict[str, dict[str, Any]] = {}
        self._by_key: dict[str, dict[str, dict[str, Any]]] = {}
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
        gone = [obj for name, obj in self.objects.items() if name not in fresh]
        self.objects, self._by_key = fresh, {}
        for obj in fresh.values():
            self._indexed(obj, add=True)
        for obj in gone:
            self.on_change(obj, True)
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
                if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # a BOOKMARK
                before = self.objects.pop(name, None)
                if before is not None:
                    self._indexed(before, add=False)
                if event["type"] == "DELETED":
                    self.on_change(obj, True)
                else:
                    self.objects[name] = obj
                    self._indexed(obj, add=True)
                    self.on_change(obj, False)

    def indexed(self, key: str) -> list[dict[str, Any]]:
        """The objects whose `index` is `key`."""
        return list(self._by_key.get(key, {}).values())

    def _indexed(self, obj: dict[str, Any], *, add: bool) -> None:
        key = self.index(obj) if self.index is not None else None
        if key is None:
            return
        name = obj["metadata"]["name"]
        if add:
            self._by_key.setdefault(key, {})[name] = obj
        else:
            same = self._by_key.get(key, {})
            same.pop(name, None)
            if not same:
                self._by_key.pop(key, None)

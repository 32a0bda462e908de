"""The kubernetes_asyncio calls its type stubs do not describe, typed in one place.

The stubs say every call answers its model class, but `_preload_content=False` answers the
raw HTTP response (read as plain JSON here, the shape Volcano's custom objects come in
anyway, and several times cheaper than the client's models: a thousand jobs' worth of
objects go through here), and `_content_type` (a JSON merge patch instead of the default
strategic merge, which custom resources refuse) is missing from their signatures.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"


async def raw(call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> aiohttp.ClientResponse:
    """`call(*args, **kwargs)`, answering the HTTP response unread (a log to stream, say).

    An answer that is not a success raises ApiException, as the client's own calls do: unread,
    the client hands back a 404 or a 409 as if it were the object asked for (a conflict on a
    create went unnoticed, a refused list read as an empty one)."""
    response: aiohttp.ClientResponse = await call(*args, _preload_content=False, **kwargs)
    if not 200 <= response.status <= 299:
        try:
            body = await response.read()
        finally:
            response.release()
        error = ApiException(status=response.status, reason=response.reason)
        error.body = body  # as the client's own ApiException carries it
        error.headers = response.headers
        raise error
    return response


async def read_json(call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)`, its answer as plain JSON rather than model objects."""
    response = await raw(call, *args, **kwargs)
    try:
        return json.loads(await response.read())
    finally:
        response.release()


async def merge_patch(call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    """`call(*args, **kwargs)` sending its body as a JSON merge patch."""
    return await call(*args, _content_type=MERGE_PATCH, **kwargs)


async def lines(response: aiohttp.ClientResponse) -> AsyncGenerator[bytes, None]:
    """The lines of a streamed answer (a log, a watch) as they arrive, without their newline.

    Read in chunks, whatever a line's length: aiohttp's `readline` caps a line at its buffer
    size and costs a call per line.
    """
    rest = b""
    async for chunk in response.content.iter_any():
        *complete, rest = (rest + chunk).split(b"\n")
        for line in complete:
            yield line
    if rest:
        yield rest


async def watch_events(
    call: Callable[..., Awaitable[Any]], **kwargs: Any
) -> AsyncGenerator[dict[str, Any], None]:
    """The events of `call(watch=True, **kwargs)` as plain JSON, one per line of the stream.

    Instead of kubernetes_asyncio's `Watch`, which decodes each event twice (and encodes it
    once between) and makes a client per watch.
    """
    response = await raw(call, watch=True, **kwargs)
    try:
        async for line in lines(response):
            if line.strip():
                yield json.loads(line)
    finally:
        response.release()

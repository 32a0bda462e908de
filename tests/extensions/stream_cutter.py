"""A TCP proxy on loopback in front of the jobs service that can cut a followed log stream.

Every connection is passed through byte for byte, except the next
`GET .../logs?follow=true` after `cut_next_stream(after=N)`: its chunked body is
passed on line by line (one chunk each, which HTTP allows a proxy to do) and
both connections are closed after the Nth line, without the last chunk, as a
dropped network connection would leave it.
"""

from __future__ import annotations

import asyncio
import contextlib

HEAD_END = b"\r\n\r\n"


class StreamCutter:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut_after: int | None = None
        self.cuts = 0  # streams cut so far
        self._server: asyncio.Server | None = None

    def cut_next_stream(self, after: int) -> None:
        self.cut_after = after

    async def start(self) -> int:
        """Listen on a free loopback port; answer it."""
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        service_r, service_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        upstream: asyncio.Future[None] | None = None
        try:
            head = await client_r.readuntil(HEAD_END)
            service_w.write(head)
            upstream = asyncio.ensure_future(_pipe(client_r, service_w))
            request_line = head.split(b"\r\n", 1)[0]
            after = None
            if self.cut_after is not None and _follows_logs(request_line):
                after, self.cut_after = self.cut_after, None
            if after is None:
                await _pipe(service_r, client_w)
            else:
                await self._cut(service_r, client_w, after)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            if upstream is not None:
                upstream.cancel()
            for writer in (client_w, service_w):
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()

    async def _cut(self, service: asyncio.StreamReader, client: asyncio.StreamWriter, after: int) -> None:
        head = await service.readuntil(HEAD_END)
        client.write(head)
        if b"transfer-encoding: chunked" not in head.lower():
            await _pipe(service, client)
            return
        lines, partial = 0, b""
        while True:
            size = int((await service.readline()).split(b";")[0], 16)
            if size == 0:  # the stream ended before the cut
                client.write(b"0" + HEAD_END)
                await client.drain()
                return
            data = partial + await service.readexactly(size)
            await service.readexactly(2)
            *complete, partial = data.split(b"\n")
            for line in complete:
                piece = line + b"\n"
                client.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                lines += 1
                if lines >= after:
                    await client.drain()
                    self.cuts += 1
                    return
            await client.drain()


def _follows_logs(request_line: bytes) -> bool:
    method, _, rest = request_line.partition(b" ")
    target = rest.rsplit(b" ", 1)[0]
    path, _, query = target.partition(b"?")
    return method == b"GET" and path.endswith(b"/logs") and b"follow=true" in query.split(b"&")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

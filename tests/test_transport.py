"""The upstream transport (common/transport.py: under the gateway's and the services' clients) against
a raw HTTP/1.1 server whose every byte the test decides: keep-alive reuse, the race with an upstream
closing an idle connection, framing, and each failure raising the httpx error the proxy turns into
502/503/504."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from common.transport import UpstreamTransport
from tests.support.servers import free_port

Handler = Callable[[int, bytes], bytes | None]  # (request number on this connection, head) → reply or None


class RawServer:
    """Answers each request with what ``handler`` returns; ``None`` closes the connection unanswered."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                body = b""
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        body = await reader.readexactly(int(line.split(b":")[1]))
                if b"transfer-encoding: chunked" in head.lower():
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        body += (await reader.readexactly(size + 2))[:size]
                        if size == 0:
                            break
                self.requests.append(head + body)
                number += 1
                reply = self.handler(number, head + body)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if b"connection: close" in reply.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def ok(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%b\r\n%b" % (
        len(body), extra, body)


@contextlib.asynccontextmanager
async def upstream(handler: Handler, **options) -> AsyncIterator[tuple[RawServer, httpx.AsyncClient]]:
    raw = RawServer(handler)
    server = await asyncio.start_server(raw.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = UpstreamTransport(f"http://127.0.0.1:{port}", **options)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=transport,
                                 timeout=httpx.Timeout(2.0)) as client:
        try:
            yield raw, client
        finally:
            server.close()


async def test_keeps_connections_alive_and_reuses_them() -> None:
    async with upstream(lambda n, req: ok()) as (raw, client):
        for _ in range(20):
            assert (await client.get("/x")).json() == {"ok": True}
    assert raw.connections == 1 and len(raw.requests) == 20


async def test_an_idle_connection_closed_by_the_upstream_is_retried_once_on_a_new_one() -> None:
    # The keep-alive race: the upstream drops the connection just as the next request arrives on it.
    async with upstream(lambda n, req: ok() if n == 1 else None) as (raw, client):
        first = await client.get("/a")
        second = await client.post("/b", json={"quantity": 2})
    assert first.status_code == second.status_code == 200
    assert raw.connections == 2
    assert raw.requests[-1].endswith(b'{"quantity":2}')


async def test_a_streamed_body_is_never_sent_twice() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"part one,"
        yield b"part two"

    async with upstream(lambda n, req: ok() if n == 1 else None) as (raw, client):
        await client.get("/a")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/upload", content=body())
    assert sum(r.startswith(b"POST") for r in raw.requests) == 1


async def test_streamed_bodies_go_chunked_and_chunked_replies_come_back_whole() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    async def body() -> AsyncIterator[bytes]:
        for part in (b"a" * 10, b"b" * 70_000):
            yield part

    async with upstream(lambda n, req: chunked) as (raw, client):
        reply = await client.post("/upload", content=body())
        again = await client.get("/next")
    assert reply.content == b"hello world" and again.content == b"hello world"
    assert raw.requests[0].endswith(b"a" * 10 + b"b" * 70_000)
    assert raw.connections == 1


async def test_connection_close_is_honoured() -> None:
    async with upstream(lambda n, req: ok(extra=b"connection: close\r\n")) as (raw, client):
        for _ in range(3):
            assert (await client.get("/x")).status_code == 200
    assert raw.connections == 3


async def test_head_and_no_content_replies_have_no_body() -> None:
    def handler(n: int, req: bytes) -> bytes:
        if req.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n"
        return b"HTTP/1.1 204 No Content\r\n\r\n" if b"/gone" in req else ok()

    async with upstream(handler) as (raw, client):
        head = await client.head("/x")
        gone = await client.delete("/gone")
        after = await client.get("/x")
    assert head.headers["content-length"] == "11" and head.content == b""
    assert gone.status_code == 204 and after.json() == {"ok": True}
    assert raw.connections == 1


async def test_failures_raise_the_httpx_errors() -> None:
    truncated = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nonly part"

    async with upstream(lambda n, req: truncated) as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/x")
    async with upstream(lambda n, req: b"NOT HTTP AT ALL\r\n\r\n") as (_, client):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/x")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = UpstreamTransport(f"http://127.0.0.1:{port}", max_connections=1)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", transport=transport) as client:
        slow = asyncio.create_task(client.get("/x", timeout=httpx.Timeout(3.0, read=0.5)))
        await asyncio.sleep(0.1)
        with pytest.raises(httpx.PoolTimeout):  # the one connection is busy with the slow request
            await client.get("/y", timeout=httpx.Timeout(3.0, pool=0.2))
        with pytest.raises(httpx.ReadTimeout):
            await slow
        # The timed-out exchange gave its slot back: the pool is usable again.
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/z", timeout=httpx.Timeout(3.0, read=0.2))
    server.close()

    port = free_port()  # nothing listens there
    async with httpx.AsyncClient(transport=UpstreamTransport(f"http://127.0.0.1:{port}")) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/x")


async def test_a_cancelled_request_gives_its_slot_back() -> None:
    def never(n: int, req: bytes) -> bytes:
        return b""  # headers never come

    async with upstream(never, max_connections=1) as (_, client):
        waiting = asyncio.create_task(client.get("/x"))
        await asyncio.sleep(0.1)
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        with pytest.raises(httpx.ReadTimeout):  # the pool slot is free again: this reaches the upstream
            await client.get("/y", timeout=httpx.Timeout(2.0, read=0.2, pool=0.5))


async def test_each_request_goes_where_its_url_says() -> None:
    async with upstream(lambda n, req: ok(b'"a"')) as (a, client), \
            upstream(lambda n, req: ok(b'"b"')) as (b, other):
        b_url = str(other.base_url).rstrip("/")
        assert (await client.get("/x")).json() == "a"
        assert (await client.get(f"{b_url}/x")).json() == "b"  # the same transport, another service
        assert (await client.get("/y")).json() == "a"
    assert len(a.requests) == 2 and len(b.requests) == 1

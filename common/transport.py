"""The transport under our httpx clients to our own services: HTTP/1.1 to one upstream, pooled, lean.

httpx's default transport (httpcore) looks at every pooled connection on every request — a socket
poll and a dozen attribute lookups each — and that bookkeeping, not the forwarding, was most of the
gateway's cost per request (docs/decisions/0008-gateway-transport.md). The gateway's clients, the
orders service's catalog client and the relay's HTTP publisher run over this transport instead, which
keeps only what they need:

- HTTP/1.1 over asyncio to one ``http://host:port``, replies parsed by httptools (the parser uvicorn
  uses), request bodies sent whole or streamed (``Transfer-Encoding: chunked``), replies streamed
  with back-pressure;
- keep-alive connections reused last-in, first-out; an idle connection is dropped after
  ``keepalive_expiry`` seconds (shorter than the services' own keep-alive of 5 s). asyncio tells a
  connection when its peer closes it, so nothing is polled before reuse; a reused connection that
  fails before the first byte of its reply is retried once on a fresh one when the body can be sent
  again;
- at most ``max_connections`` requests in flight; the httpx timeouts of each request (connect, read,
  write, pool) and the httpx errors for each failure (``ConnectError``, ``ConnectTimeout``,
  ``ReadTimeout``, ``WriteTimeout``, ``PoolTimeout``, ``RemoteProtocolError``), so callers cannot tell
  it from the default transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httptools
import httpx

from common import tracing
from common.balancing import DOWN_FOR, BalancedTransport, UpstreamPool, split_urls

# Reading from an upstream pauses while this much of its reply waits for the client to take it.
READ_HIGH_WATER = 256 * 1024


class _Closed(Exception):
    """The connection closed (or broke) before the reply was complete."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection to the upstream, carrying one exchange at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.origin: tuple[str, int] = ("", 0)
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future | None = None
        self._write_waiter: asyncio.Future | None = None
        self._write_paused = False
        self._reading_paused = False
        self._begin(head=False)
        self._parser: httptools.HttpResponseParser | None = None

    # -- one exchange ---------------------------------------------------------------------------------
    def _begin(self, head: bool) -> None:
        self._head = head
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.framed = False  # Content-Length or chunked: the end of the body is known without EOF
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.error: BaseException | None = None

    def start(self, head: bool) -> None:
        self._begin(head)
        self._parser = httptools.HttpResponseParser(self)

    def finish(self) -> None:
        self._parser = None

    # -- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes on an idle connection: nothing can be trusted on it any more
            self.close()
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.error = httpx.RemoteProtocolError(f"malformed reply from the upstream: {exc}")
            self.close()
        if self.buffered > READ_HIGH_WATER and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._lost()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_exception(_Closed())

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._write_waiter is not None and not self._write_waiter.done():
            self._write_waiter.set_result(None)

    def _lost(self, exc: BaseException | None = None) -> None:
        self.closed = True
        if self.headers_done and not self.framed and not self.complete and self.error is None:
            self.complete, self.keep_alive = True, False  # a body delimited by the end of the connection
        elif not self.complete and self.error is None:
            self.error = _Closed(str(exc) if exc else "closed by the upstream")
        self._wake()

    # -- httptools callbacks ---------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:
            return  # informational: the real reply follows
        self.keep_alive = self._parser.should_keep_alive()
        self.headers_done = True
        if self._head or self.status in (204, 304):
            self.complete = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200 and not self.headers_done:
            self.headers = []
            self.framed = False
            return
        self.complete = True

    # -- waiting ---------------------------------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Until something arrives (or the connection ends); TimeoutError after ``timeout`` seconds."""
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, _expire, waiter) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def take(self) -> list[bytes]:
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        return chunks

    async def write(self, data: bytes, timeout: float | None) -> None:
        if self.closed or self.transport is None:
            raise _Closed("closed before the request was sent")
        self.transport.write(data)
        if self._write_paused:
            waiter = self._write_waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(waiter, timeout)
            finally:
                self._write_waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _timeouts(request: httpx.Request) -> dict[str, float | None]:
    return request.extensions.get("timeout", {})


class _ReplyBody(httpx.AsyncByteStream):
    """The body of one reply, read from its connection; gives the connection back when done."""

    def __init__(self, pool: UpstreamTransport, conn: _Connection, read_timeout: float | None) -> None:
        self._pool = pool
        self._conn = conn
        self._read_timeout = read_timeout
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                if conn.chunks:
                    for chunk in conn.take():
                        yield chunk
                    continue
                if conn.complete:
                    break
                if conn.error is not None:
                    raise httpx.RemoteProtocolError(
                        "the upstream closed the connection before the end of its reply")
                try:
                    await conn.wait(self._read_timeout)
                except TimeoutError:
                    raise httpx.ReadTimeout("the upstream's reply stalled") from None
        except BaseException:
            self._release(reusable=False)
            raise
        self._release(reusable=True)

    async def aclose(self) -> None:
        self._release(reusable=False)

    def _release(self, reusable: bool) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        conn.finish()
        if reusable and conn.complete and conn.keep_alive and not conn.closed and conn.error is None:
            self._pool._put_back(conn)
        else:
            conn.close()
        self._pool._slots.release()


class UpstreamTransport(httpx.AsyncBaseTransport):
    """Pooled HTTP/1.1 connections to a service (``http://host:port``; each request goes where its URL
    says, so a client whose base URL changes follows it)."""

    def __init__(self, url: str, *, max_connections: int = 100, keepalive_expiry: float = 4.0) -> None:
        if httpx.URL(url).scheme != "http":
            raise ValueError(f"UpstreamTransport speaks plain HTTP to a service; got {url!r}")
        self.keepalive_expiry = keepalive_expiry
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._closed = False

    # -- the pool --------------------------------------------------------------------------------------
    async def _acquire_slot(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()
            return
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except TimeoutError:
            raise httpx.PoolTimeout("every connection to the upstream is busy") from None

    def _idle_connection(self, origin: tuple[str, int], now: float) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_expiry:
                return conn
            conn.close()
        return None

    def _put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.close()
            return
        now = conn.loop.time()
        conn.idle_since = now
        idle = self._idle.setdefault(conn.origin, [])
        idle.append(conn)
        while idle and (idle[0].closed or now - idle[0].idle_since >= self.keepalive_expiry):
            idle.pop(0).close()

    async def _connect(self, origin: tuple[str, int], timeout: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = origin
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), host, port), timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} in time") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        conn.origin = origin
        return conn

    # -- one request -----------------------------------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if tracing.enabled():
            return await self._traced(request)
        return await self._handle(request)

    async def _traced(self, request: httpx.Request) -> httpx.Response:
        """A client span (until the reply's head) within the current trace, its ``traceparent`` sent
        along; outside any trace (a background round's own call) no span is made."""
        with tracing.span(request.method, kind="client", root=False, attributes={
                "http.request.method": request.method, "server.address": request.url.host,
                "server.port": request.url.port or 80, "url.path": request.url.path}) as span:
            if span is not None:
                for name, value in tracing.inject().items():
                    request.headers[name] = value
            response = await self._handle(request)
            if span is not None:
                span.set_attribute("http.response.status_code", response.status_code)
            return response

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        timeouts = _timeouts(request)
        await self._acquire_slot(timeouts.get("pool"))
        try:
            return await self._exchange(request, timeouts)
        except BaseException:
            self._slots.release()
            raise

    async def _exchange(self, request: httpx.Request, timeouts: dict[str, float | None]) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"UpstreamTransport speaks plain HTTP; got {request.url.scheme!r}")
        origin = (request.url.host, request.url.port or 80)
        try:
            body: bytes | None = request.content
        except httpx.RequestNotRead:
            body = None  # a streamed body: sent once, never retried
        conn = self._idle_connection(origin, asyncio.get_running_loop().time())
        reused = conn is not None
        if conn is None:
            conn = await self._connect(origin, timeouts.get("connect"))
        try:
            return await self._on(conn, request, body, timeouts)
        except _Closed:
            conn.close()
            if not (reused and body is not None and not conn.got_bytes):
                raise httpx.RemoteProtocolError("the upstream closed the connection without a reply") from None
        except BaseException:
            conn.close()
            raise
        # The upstream had closed the idle connection as we picked it: once more on a new one. If
        # that connection is refused, the upstream is gone and may have read the request before it
        # went: not a connect error (which says the request never left, and may go to another replica).
        try:
            conn = await self._connect(origin, timeouts.get("connect"))
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise httpx.RemoteProtocolError(f"the upstream closed the connection without a reply ({exc})") from None
        try:
            return await self._on(conn, request, body, timeouts)
        except _Closed:
            conn.close()
            raise httpx.RemoteProtocolError("the upstream closed the connection without a reply") from None
        except BaseException:
            conn.close()
            raise

    async def _on(self, conn: _Connection, request: httpx.Request, body: bytes | None,
                  timeouts: dict[str, float | None]) -> httpx.Response:
        conn.start(head=request.method == "HEAD")
        head = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"\r\n")
        write_timeout = timeouts.get("write")
        try:
            if body is not None:
                await conn.write(b"".join(head) + body, write_timeout)
            else:
                await conn.write(b"".join(head), write_timeout)
                await self._send_stream(conn, request, write_timeout)
        except TimeoutError:
            raise httpx.WriteTimeout("the upstream did not take the request in time") from None
        read_timeout = timeouts.get("read")
        while not conn.headers_done:
            if conn.error is not None:
                if isinstance(conn.error, httpx.HTTPError):
                    raise conn.error
                raise _Closed(str(conn.error))
            try:
                await conn.wait(read_timeout)
            except TimeoutError:
                raise httpx.ReadTimeout("the upstream did not answer in time") from None
        return httpx.Response(conn.status, headers=conn.headers, stream=_ReplyBody(self, conn, read_timeout),
                              extensions={"http_version": b"HTTP/1.1"})

    @staticmethod
    async def _send_stream(conn: _Connection, request: httpx.Request, timeout: float | None) -> None:
        chunked = b"chunked" in request.headers.get("transfer-encoding", "").encode().lower()
        async for chunk in request.stream:
            if not chunk:
                continue
            if chunked:
                await conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk), timeout)
            else:
                await conn.write(chunk, timeout)
        if chunked:
            await conn.write(b"0\r\n\r\n", timeout)

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                idle.pop().close()


def service_transport(url: str, max_connections: int = 100, down_for: float = DOWN_FOR) -> httpx.AsyncBaseTransport:
    """:class:`UpstreamTransport` for a plain-HTTP service URL; httpx's own transport behind TLS. A
    comma-separated list names the service's replicas: the transport spreads the requests addressed to
    the first one over all of them (:class:`common.balancing.BalancedTransport`)."""
    urls = split_urls(url)
    if httpx.URL(urls[0]).scheme == "http":
        inner: httpx.AsyncBaseTransport = UpstreamTransport(urls[0], max_connections=max_connections)
    else:
        inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=max_connections, keepalive_expiry=4.0))
    if len(urls) == 1:
        return inner
    return BalancedTransport(inner, UpstreamPool(urls, down_for))


class ServiceClient:
    """JSON calls to one of our services, handed to its pooled transport directly. The layers of
    ``httpx.AsyncClient`` (cookie jar, redirects, auth, URL merging) are ones calls between our own
    services never use, and they were a third of such a call's CPU; the gateway's proxy skips them
    the same way (decision 0008)."""

    def __init__(self, base_url: str, *, timeout: httpx.Timeout, headers: dict[str, str],
                 max_connections: int = 100, idempotent: bool = False) -> None:
        # ``base_url`` may name several replicas (comma-separated): calls go to the first, and the
        # transport spreads them. Each call goes where it says: a test may point it elsewhere.
        self.base_url = split_urls(base_url)[0]
        self.transport = service_transport(base_url, max_connections)
        # True when the receiver treats a repeated call as a no-op (keyed by an id the caller chose):
        # then a call whose replica closed the connection before answering goes to another replica.
        self.extensions = {"idempotent": True} if idempotent else {}
        self.timeout = timeout.as_dict()
        self.headers = [(b"content-type", b"application/json"), *_raw(headers)]

    async def post(self, path: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """The reply, read whole; the transport's httpx errors when there is none."""
        request = httpx.Request("POST", self.base_url + path, content=content,
                                headers=[*self.headers, *_raw(headers or {})],
                                extensions={"timeout": self.timeout, **self.extensions})
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]

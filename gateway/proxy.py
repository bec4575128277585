"""Forwarding a public request to its service.

:class:`ProxyRoute` is the first route of the gateway's app: a request whose path falls under the
route table's prefixes (``GATEWAY_ROUTES``) is forwarded by plain ASGI, without FastAPI's per-route
machinery; anything else (identity, health, docs, pages) goes on to the app's own routes. It still runs
inside the app's middleware, so request ids, access logs, metrics and problem+json errors are the same.

One pooled ``httpx.AsyncClient`` per upstream, made at start-up, with explicit connect, read and
pool timeouts, over :class:`common.transport.UpstreamTransport`. JSON bodies
(≤ ``max_json_body_bytes``) are read before an upstream connection is taken, so a slow client cannot
hold the pool; uploads are streamed through with their own limit. Large responses stream back; small
ones (the common case) are passed on whole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookiejar import CookieJar, CookiePolicy

import httpx
from prometheus_client import Histogram
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from common.balancing import split_urls
from common.errors import NotFound, Problem, problem_response
from common.logging import request_id_var
from common.transport import service_transport
from gateway.paths import RejectedPath, RouteTable, canonical_path
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.proxy")

# Header names as ASGI and httpx carry them: lower-case bytes.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
    b"trailers", b"transfer-encoding", b"upgrade", b"host", b"content-length",
})
# Headers a caller must never be able to set on the way to a service.
PRIVATE_REQUEST_HEADERS = frozenset({b"x-service-token", b"x-forwarded-for", b"x-forwarded-proto",
                                     b"x-forwarded-host", b"x-real-ip", b"x-request-id", b"x-api-key"})
DROPPED = HOP_BY_HOP | PRIVATE_REQUEST_HEADERS
WHOLE_RESPONSE_MAX = 256 * 1024
KEPT_URLS = 1024  # parsed upstream URLs kept per service (all dropped when full)

# Per proxied request with a whole (not streamed) reply: the service's part (request sent → reply
# read) and what the gateway adds to it (its whole handling, from the first middleware to the reply
# handed to the server, minus the service's part). "Is it us or the service?" at a glance.
_BUCKETS = (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5)
UPSTREAM_SECONDS = Histogram("gateway_upstream_seconds", "The service's part of a proxied request",
                             ["upstream"], buckets=_BUCKETS)
ADDED_SECONDS = Histogram("gateway_added_seconds", "What the gateway adds to a proxied request: its whole "
                          "handling minus the service's part", ["upstream"], buckets=_BUCKETS)


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class RequestTimeout(Problem):
    status, slug, title = 408, "request-timeout", "The request body took too long to arrive"


class Upstream:
    """What forwarding to one service needs: its pooled client's transport, its origin and timeouts.
    The proxy hands requests to the transport itself: the client's layers (auth, redirects, cookie
    jar, URL merging) are ones a proxy does not use, and were ≈ 30 % of its CPU per request."""

    def __init__(self, client: httpx.AsyncClient, transport: httpx.AsyncBaseTransport, url: str) -> None:
        self.transport = transport
        self.origin = url.rstrip("/")
        self.timeout = client.timeout.as_dict()
        self.stopping: asyncio.Event | None = None
        # The URLs of the latest targets, parsed once (httpx.URL is immutable; parsing one was a tenth
        # of the proxy's CPU per request, and the same pages are asked for again and again).
        self._urls: dict[str, httpx.URL] = {}

    def request(self, method: str, path: str, query: bytes, headers: list, content) -> httpx.Request:
        """``path`` as ``canonical_path`` gives it (percent-encoded); ``query`` as the client sent it
        (uvicorn refuses a request target with raw bytes above ASCII)."""
        target = path + ("?" + query.decode("latin-1") if query else "")
        url = self._urls.get(target)
        if url is None:
            if len(self._urls) >= KEPT_URLS:
                self._urls.clear()
            url = self._urls[target] = httpx.URL(self.origin + target)
        return httpx.Request(method, url, headers=headers, content=content, extensions={"timeout": self.timeout})


class Upstreams:
    """The pooled clients, one per service, for the life of the app."""

    def __init__(self, settings: GatewaySettings) -> None:
        timeout = httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                                write=settings.read_timeout, pool=settings.pool_timeout)
        self.clients: dict[str, httpx.AsyncClient] = {}
        self.forwarding: dict[str, Upstream] = {}
        self.stopping = asyncio.Event()  # set when the process is told to stop: live streams end
        for name, urls in settings.upstream_urls().items():
            # Several replicas (a comma list): addressed as the first, spread by the transport.
            url = split_urls(urls)[0]
            transport = service_transport(urls, settings.max_connections, settings.upstream_down_for)
            self.clients[name] = httpx.AsyncClient(base_url=url, timeout=timeout, follow_redirects=False,
                                                   transport=transport, cookies=CookieJar(policy=_NoCookies()))
            self.forwarding[name] = Upstream(self.clients[name], transport, url)
            self.forwarding[name].stopping = self.stopping

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()))


class _NoCookies(CookiePolicy):
    """The clients are shared by every caller: a cookie one reply sets must never ride on another's request."""

    netscape, rfc2965, hide_cookie2 = True, False, False

    def set_ok(self, cookie, request) -> bool:  # noqa: ANN001 - http.cookiejar's signature
        return False

    def return_ok(self, cookie, request) -> bool:  # noqa: ANN001
        return False

    def domain_return_ok(self, domain, request) -> bool:  # noqa: ANN001
        return False

    def path_return_ok(self, path, request) -> bool:  # noqa: ANN001
        return False


def _is_upload(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").lower()
    return ctype.startswith("multipart/form-data") or ctype.startswith("image/")


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise Problem("Content-Length is not a number") from None


async def _read_limited(request: Request, limit: int, timeout: float) -> bytes:
    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"The body is larger than {limit} bytes", limit=limit)
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise RequestTimeout() from None


async def _stream_limited(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The upload is larger than {limit} bytes", limit=limit)
        yield chunk


def forward_headers(request: Request, replaced: set[str] = frozenset()) -> list[tuple[bytes, bytes]]:
    """The caller's headers as the bytes that came (any octet a client may send passes through
    unchanged), minus hop-by-hop and private ones, plus the forwarding headers."""
    dropped = DROPPED | {k.encode("latin-1") for k in replaced} if replaced else DROPPED
    scope = request.scope
    host = b""
    headers = []
    for k, v in scope["headers"]:
        if k == b"host" and not host:
            host = v
        if k not in dropped:
            headers.append((k, v))
    client = scope.get("client")
    headers += [(b"x-request-id", (request_id_var.get() or "").encode("latin-1")),
                (b"x-forwarded-for", client[0].encode("latin-1") if client else b""),
                (b"x-forwarded-proto", scope.get("scheme", "http").encode("latin-1")),
                (b"x-forwarded-host", host)]
    return headers


def unavailable(service: str, why: str) -> Response:
    return problem_response(503, "service-unavailable", "Service unavailable",
                            f"The {service} service is unavailable ({why}); try again shortly.",
                            headers={"Retry-After": "2"}, service=service)


def bad_gateway(service: str) -> Response:
    return problem_response(502, "bad-gateway", "Bad gateway",
                            f"The {service} service closed the connection.", service=service)


def gateway_timeout(service: str) -> Response:
    return problem_response(504, "upstream-timeout", "Gateway timeout",
                            f"The {service} service did not answer in time.", service=service)


async def _request_body(request: Request, settings: GatewaySettings) -> bytes | AsyncIterator[bytes] | None:
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE") and "content-length" not in request.headers \
            and "transfer-encoding" not in request.headers:
        return None
    upload = _is_upload(request)
    limit = settings.max_upload_bytes if upload else settings.max_json_body_bytes
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes", limit=limit)
    if upload:
        return _stream_limited(request, limit)
    return await _read_limited(request, limit, settings.body_timeout)


async def forward(request: Request, send: Send, target: Upstream, service: str, path: str,
                  settings: GatewaySettings, extra_headers: list[tuple[str, str]] = ()) -> None:
    """Send ``request`` to ``service`` at ``path`` and its reply (or a problem) to the client."""
    try:
        content = await _request_body(request, settings)
    except ClientDisconnect:
        return
    replaced = {k for k, _ in extra_headers}
    upstream_request = target.request(request.method, path, request.scope.get("query_string", b""),
                                      [*forward_headers(request, replaced),
                                       *[(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra_headers]],
                                      content)
    sent_at = time.perf_counter()
    try:
        upstream = await target.transport.handle_async_request(upstream_request)
    except httpx.PoolTimeout:
        log.warning("upstream pool exhausted", extra={"upstream": service})
        return await unavailable(service, "too many requests in flight")(request.scope, request.receive, send)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        log.warning("upstream unreachable: %s", exc, extra={"upstream": service})
        return await unavailable(service, "not reachable")(request.scope, request.receive, send)
    except (httpx.ReadTimeout, httpx.WriteTimeout):
        log.warning("upstream too slow", extra={"upstream": service})
        return await gateway_timeout(service)(request.scope, request.receive, send)
    except httpx.RemoteProtocolError as exc:
        log.warning("upstream broke the connection: %s", exc, extra={"upstream": service})
        return await bad_gateway(service)(request.scope, request.receive, send)

    try:
        headers = [(k, v) for k, v in upstream.headers.raw
                   if k.lower() not in HOP_BY_HOP and k.lower() != b"x-request-id"]
        length = upstream.headers.get("content-length")
        if request.method == "HEAD":
            if length is not None:
                headers.append((b"content-length", length.encode("latin-1")))
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        elif length is not None and length.isdigit() and int(length) <= WHOLE_RESPONSE_MAX:
            try:
                body = b"".join([chunk async for chunk in upstream.aiter_raw()])
            except httpx.ReadTimeout:
                return await gateway_timeout(service)(request.scope, request.receive, send)
            except httpx.HTTPError:
                return await bad_gateway(service)(request.scope, request.receive, send)
            upstream_part = time.perf_counter() - sent_at
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            _observe(request.scope, service, upstream_part)
        else:
            live = upstream.headers.get("content-type", "").startswith("text/event-stream")
            await _stream_reply(upstream, request.receive, send, headers, service,
                                target.stopping if live else None)
    finally:
        await upstream.aclose()


def _observe(scope: Scope, service: str, upstream_part: float) -> None:
    started = scope.get("state", {}).get("started")
    UPSTREAM_SECONDS.labels(service).observe(upstream_part)
    if started is not None:
        ADDED_SECONDS.labels(service).observe(max(0.0, time.perf_counter() - started - upstream_part))


async def _stream_reply(upstream: httpx.Response, receive: Receive, send: Send,
                        headers: list[tuple[bytes, bytes]], service: str,
                        stopping: asyncio.Event | None = None) -> None:
    """Copy a streamed reply (a large body, the live notification stream) until it ends or the client
    goes away. A client that leaves must free the upstream connection at once: an abandoned live
    stream would otherwise hold a pool slot, and a stream at the service, for as long as it runs.
    A live stream (``stopping`` given) is also ended when the gateway is told to stop, so that its
    client reconnects (with Last-Event-ID) to another replica at once rather than at the end of the
    shutdown's grace period."""
    await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})

    async def copy() -> None:
        try:
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            # The status line is out: all that is left is to end the reply unfinished, which the
            # server does by closing the connection, so the client cannot take it for a whole one.
            log.warning("upstream reply broke off: %s", exc, extra={"upstream": service})
            return
        await send({"type": "http.response.body", "body": b""})

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    copying = asyncio.ensure_future(copy())
    watching = asyncio.ensure_future(client_gone())
    tasks = [copying, watching]
    if stopping is not None:
        tasks.append(asyncio.ensure_future(stopping.wait()))
    done: set[asyncio.Future] = set()
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if copying.done() and not copying.cancelled() and copying.exception() is not None:
        raise copying.exception()
    if not done & {copying, watching}:  # told to stop: the live stream ends whole
        await send({"type": "http.response.body", "body": b""})


class _RouteLabel:
    """What logs and metrics call a proxied route: the prefix, never the raw path (bounded labels)."""

    def __init__(self, prefix: str) -> None:
        self.path = prefix + "/{path}"


Prepare = Callable[[Request, str, str], Awaitable[list[tuple[str, str]]]]


class ProxyRoute(BaseRoute):
    """Forwards whatever the route table claims; leaves every other path to the app's routes."""

    methods = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE"})

    def __init__(self, routes: RouteTable, settings: GatewaySettings, prepare: Prepare) -> None:
        self.routes = routes
        self.settings = settings
        self.prepare = prepare
        self.labels = {prefix: _RouteLabel(prefix) for prefix, _ in routes.prefixes}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return Match.NONE, {}
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        try:
            path = canonical_path(raw)
        except (RejectedPath, UnicodeDecodeError):
            # No spelling of a path reaches /internal, here or in the app's routes: answered 404.
            return Match.FULL, {"proxy": None}
        found = self.routes.match_prefix(path)
        if found is None:
            return Match.NONE, {}
        prefix, service = found
        return Match.FULL, {"proxy": (service, path), "route": self.labels[prefix]}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = scope.get("proxy")
        if target is None:
            raise NotFound("No such resource")
        service, path = target
        request = Request(scope, receive)
        extra = await self.prepare(request, service, path)
        target = scope["app"].state.upstreams.forwarding[service]
        await forward(request, send, target, service, path, self.settings, extra)

    def url_path_for(self, name: str, /, **path_params: object):  # pragma: no cover - never reversed
        raise NotImplementedError

"""Forwarding a public request to its service.

One pooled ``httpx.AsyncClient`` per upstream, made at start-up, with explicit connect, read and
pool timeouts. JSON bodies (≤ ``max_json_body_bytes``) are read before an upstream connection is
taken, so a slow client cannot hold the pool; uploads are streamed through with their own limit.
Large responses stream back; small ones (the common case) are passed on whole.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse

from common.errors import Problem, problem_response
from common.logging import request_id_var
from gateway.settings import GatewaySettings

log = logging.getLogger("gateway.proxy")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length",
})
# Headers a caller must never be able to set on the way to a service.
PRIVATE_REQUEST_HEADERS = frozenset({"x-service-token", "x-forwarded-for", "x-forwarded-proto",
                                     "x-forwarded-host", "x-real-ip", "x-request-id", "x-api-key"})
WHOLE_RESPONSE_MAX = 256 * 1024


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The request body is too large"


class RequestTimeout(Problem):
    status, slug, title = 408, "request-timeout", "The request body took too long to arrive"


class Upstreams:
    """The pooled clients, one per service, for the life of the app."""

    def __init__(self, settings: GatewaySettings) -> None:
        timeout = httpx.Timeout(connect=settings.connect_timeout, read=settings.read_timeout,
                                write=settings.read_timeout, pool=settings.pool_timeout)
        limits = httpx.Limits(max_connections=settings.max_connections,
                              max_keepalive_connections=settings.max_connections, keepalive_expiry=30)
        self.clients = {
            name: httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits, follow_redirects=False)
            for name, url in settings.upstream_urls().items()
        }

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients.values()))


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


def forward_headers(request: Request, replaced: set[str] = frozenset()) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in request.headers.items()
               if k not in HOP_BY_HOP and k not in PRIVATE_REQUEST_HEADERS and k not in replaced]
    client = request.client.host if request.client else ""
    headers += [("x-request-id", request_id_var.get() or ""), ("x-forwarded-for", client),
                ("x-forwarded-proto", request.url.scheme), ("x-forwarded-host", request.headers.get("host", ""))]
    return headers


def unavailable(service: str, why: str) -> Response:
    return problem_response(503, "service-unavailable", "Service unavailable",
                            f"The {service} service is unavailable ({why}); try again shortly.",
                            headers={"Retry-After": "2"}, service=service)


async def forward(request: Request, client: httpx.AsyncClient, service: str, path: str,
                  settings: GatewaySettings, extra_headers: list[tuple[str, str]] = ()) -> Response:
    method = request.method
    content: bytes | AsyncIterator[bytes] | None = None
    if method not in ("GET", "HEAD", "OPTIONS", "DELETE") or request.headers.get("content-length") \
            or request.headers.get("transfer-encoding"):
        limit = settings.max_upload_bytes if _is_upload(request) else settings.max_json_body_bytes
        declared = _declared_length(request)
        if declared is not None and declared > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes", limit=limit)
        if _is_upload(request):
            content = _stream_limited(request, limit)
        else:
            try:
                content = await _read_limited(request, limit, settings.body_timeout)
            except ClientDisconnect:
                return Response(status_code=400)
    url = httpx.URL(path=path, query=request.url.query.encode("latin-1"))
    replaced = {k for k, _ in extra_headers}
    upstream_request = client.build_request(method, url,
                                            headers=[*forward_headers(request, replaced), *extra_headers],
                                            content=content)
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.PoolTimeout:
        log.warning("upstream pool exhausted", extra={"upstream": service})
        return unavailable(service, "too many requests in flight")
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        log.warning("upstream unreachable: %s", exc, extra={"upstream": service})
        return unavailable(service, "not reachable")
    except (httpx.ReadTimeout, httpx.WriteTimeout):
        log.warning("upstream too slow", extra={"upstream": service})
        return problem_response(504, "upstream-timeout", "Gateway timeout",
                                f"The {service} service did not answer in time.", service=service)
    except httpx.RemoteProtocolError as exc:
        log.warning("upstream broke the connection: %s", exc, extra={"upstream": service})
        return problem_response(502, "bad-gateway", "Bad gateway",
                                f"The {service} service closed the connection.", service=service)

    headers = [(k, v) for k, v in upstream.headers.multi_items()
               if k.lower() not in HOP_BY_HOP and k.lower() != "x-request-id"]
    length = upstream.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) <= WHOLE_RESPONSE_MAX:
        try:
            body = b"".join([chunk async for chunk in upstream.aiter_raw()])
        except httpx.ReadTimeout:
            return problem_response(504, "upstream-timeout", "Gateway timeout",
                                    f"The {service} service did not answer in time.", service=service)
        finally:
            await upstream.aclose()
        response = Response(body, status_code=upstream.status_code)
        response.raw_headers = [*[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                                (b"content-length", str(len(body)).encode())]
        return response
    response = StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code,
                                 background=BackgroundTask(upstream.aclose))
    response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return response

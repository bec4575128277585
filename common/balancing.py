"""Several replicas of one service behind one client: which replica a request goes to, and when it may
go to another.

A service's URL setting may name several replicas, comma-separated
(``GATEWAY_CATALOG_URL=http://10.0.0.5:8001,http://10.0.0.6:8001``). :class:`UpstreamPool` keeps them
and hands out the order to try them in: round robin, a replica that refused a connection skipped for
``down_for`` seconds (tried last, not never: when every replica is marked down they are all tried).
:class:`BalancedTransport` wraps the pooled transport of the service (``common.transport``): a
request addressed to the first replica (the clients' base URL) is sent to the pool's pick, and

- on a **connect error** (refused, unreachable, no answer to the connection in time) it goes to the
  next replica, whatever its method: no byte of it reached the service;
- when the connection **closes before a reply**, it goes to the next replica only if it is
  idempotent: ``GET``, ``HEAD``, ``OPTIONS``, a request carrying an ``Idempotency-Key`` (the orders
  API keeps each key's reply), or one its client marks so (``extensions={"idempotent": True}``:
  calls between our services whose receiver treats a repeat as a no-op) — and only when its body
  can be sent again (not a streamed upload). A ``POST`` that may have reached the service is never
  sent twice;
- a **timeout** waiting for the reply is never retried: the replica may still be working on it,
  and a second copy would double the load that made it slow.
"""

from __future__ import annotations

import itertools
import logging
import time

import httpx

log = logging.getLogger("balancing")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DOWN_FOR = 5.0  # seconds a replica that refused a connection is tried last


def split_urls(value: str) -> list[str]:
    """``"http://a:1, http://b:2"`` → ``["http://a:1", "http://b:2"]``: a service's replicas, each an
    origin (scheme, host, port; no path)."""
    urls = [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
    if not urls:
        raise ValueError("no service URL given")
    for url in urls:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.path not in ("", "/"):
            raise ValueError(f"{url!r} is not a service origin (http://host:port, no path)")
    return urls


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


class UpstreamPool:
    """The replicas of one service, in round-robin order, with the ones that refused a connection lately
    put last."""

    def __init__(self, urls: list[str], down_for: float = DOWN_FOR) -> None:
        self.urls = urls
        self.origins = [_origin(httpx.URL(u)) for u in urls]
        self.down_for = down_for
        self._down_until: dict[tuple[str, str, int], float] = {}
        self._turn = itertools.count()

    def order(self) -> list[tuple[str, str, int]]:
        start = next(self._turn) % len(self.origins)
        turn = self.origins[start:] + self.origins[:start]
        now = time.monotonic()
        up = [o for o in turn if self._down_until.get(o, 0.0) <= now]
        down = sorted((o for o in turn if self._down_until.get(o, 0.0) > now), key=self._down_until.__getitem__)
        return up + down

    def mark_down(self, origin: tuple[str, str, int]) -> None:
        self._down_until[origin] = time.monotonic() + self.down_for

    def mark_up(self, origin: tuple[str, str, int]) -> None:
        self._down_until.pop(origin, None)

    def is_down(self, origin: tuple[str, str, int]) -> bool:
        return self._down_until.get(origin, 0.0) > time.monotonic()


def is_idempotent(request: httpx.Request) -> bool:
    return (request.method in IDEMPOTENT_METHODS or "idempotency-key" in request.headers
            or bool(request.extensions.get("idempotent")))


def _replayable(request: httpx.Request) -> bool:
    try:
        request.content  # noqa: B018 - raises when the body is a stream, already (partly) sent
    except httpx.RequestNotRead:
        return False
    return True


class BalancedTransport(httpx.AsyncBaseTransport):
    """Spreads the requests of one service's clients over its replicas (see the module's docstring)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, pool: UpstreamPool, service: str = "") -> None:
        self.inner = inner
        self.pool = pool
        self.service = service or pool.urls[0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _origin(request.url) != self.pool.origins[0]:
            return await self.inner.handle_async_request(request)  # addressed elsewhere: as it says
        retry_after_send = is_idempotent(request) and _replayable(request)
        last: httpx.HTTPError | None = None
        for origin in self.pool.order():
            scheme, host, port = origin
            request.url = request.url.copy_with(scheme=scheme, host=host, port=port)
            request.headers["Host"] = request.url.netloc.decode("ascii")
            try:
                response = await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if not self.pool.is_down(origin):
                    log.warning("%s replica %s:%s unreachable, trying the next: %s", self.service, host, port, exc)
                self.pool.mark_down(origin)
                last = exc
                continue
            except httpx.RemoteProtocolError as exc:
                if not retry_after_send:
                    raise
                log.warning("%s replica %s:%s closed the connection on a %s; sending it to the next",
                            self.service, host, port, request.method)
                last = exc
                continue
            self.pool.mark_up(origin)
            return response
        assert last is not None
        raise last

    async def aclose(self) -> None:
        await self.inner.aclose()

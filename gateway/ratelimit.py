"""Rate limits for the gateway: in memory by default, in Redis when configured, with the same semantics.

Algorithm: a **fixed window aligned to the first hit**. The first request for a (rule, key) opens a
window of ``rule.window`` seconds and a counter; every request, allowed or not, adds one; a request
is allowed while the counter is at most ``rule.limit``. When the window's time is up the counter is
gone and the next request opens a new window. So within one window at most ``limit`` requests pass;
across the boundary of two consecutive windows up to ``2 * limit`` can pass in a short span (the
usual fixed-window trade, accepted here for exactness under concurrency and one Redis round trip).
Refused requests do not extend the window, so a client that keeps hammering is freed on time.

- Memory (:class:`MemoryRateLimiter`): one process only. Each hit is a few dict operations with no
  ``await`` in between, so concurrent tasks on the event loop cannot interleave inside it (a
  ``threading.Lock`` also makes it safe across threads). Memory is bounded: expired windows are
  purged by a sweep every ``sweep_every`` hits, and at most ``max_keys`` windows are tracked — when
  full, the oldest window (the earliest opened) is dropped, so a bot sending random keys cannot grow
  the table, at worst it resets the oldest counters early.
- Redis (:class:`RedisRateLimiter`): shared by every gateway process. One round trip per hit: a Lua
  script doing ``INCR`` + ``PEXPIRE`` (on the first hit) + ``PTTL`` atomically, so concurrent hits
  from many processes are counted exactly. Keys are ``{prefix}{rule.name}:{sha256(key)[:32]}``
  (default prefix ``cv:rl:``): user input never forms raw Redis keys and every key has a TTL.

**Redis failures fail open.** If Redis cannot be reached, times out or answers with an error, the
hit is *allowed* (``remaining = limit``, ``reset = window``) and a warning is logged on
``gateway.ratelimit`` (at most one every ``warn_every`` seconds, with the count of failures in
between). A rate limiter is a protection, not a dependency: an outage of Redis must not turn every
request into a 500. After a failure Redis is not asked again for ``failure_backoff`` seconds, so
requests do not each wait for a connect timeout while it is down.

Headers follow draft-ietf-httpapi-ratelimit-headers (structured-field form)::

    RateLimit-Policy: "login-account";q=5;w=300
    RateLimit: "login-account";r=0;t=212
    Retry-After: 212                      (on 429 only)
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from common.errors import Problem

log = logging.getLogger("gateway.ratelimit")

DEFAULT_REDIS_PREFIX = "cv:rl:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class Rule:
    name: str  # e.g. "login-account"; the policy name in the RateLimit headers and in Redis keys
    limit: int  # requests allowed per window
    window: int  # seconds

    def __post_init__(self) -> None:
        # The name goes into a structured-field string and a Redis key: keep it a plain token.
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"rule name must match {_NAME.pattern}: {self.name!r}")
        if self.limit < 1:
            raise ValueError(f"rule {self.name}: limit must be at least 1")
        if self.window < 1:
            raise ValueError(f"rule {self.name}: window must be at least 1 second")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: Rule
    remaining: int  # >= 0
    reset: int  # seconds until the window frees up, >= 1

    def headers(self) -> dict[str, str]:
        name, rule = self.rule.name, self.rule
        out = {
            "RateLimit-Policy": f'"{name}";q={rule.limit};w={rule.window}',
            "RateLimit": f'"{name}";r={self.remaining};t={self.reset}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset)
        return out


def _decide(rule: Rule, count: int, seconds_left: float) -> Decision:
    reset = min(rule.window, max(1, math.ceil(seconds_left)))
    return Decision(allowed=count <= rule.limit, rule=rule, remaining=max(0, rule.limit - count),
                    reset=reset)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@runtime_checkable
class RateLimiter(Protocol):
    async def hit(self, rule: Rule, key: str) -> Decision:
        """Count one request for ``key`` under ``rule`` and say whether it may pass."""
        ...

    async def aclose(self) -> None: ...


class MemoryRateLimiter:
    """Fixed windows in a dict, for one process. See the module docstring."""

    def __init__(self, *, max_keys: int = 100_000, sweep_every: int = 1_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_keys < 1 or sweep_every < 1:
            raise ValueError("max_keys and sweep_every must be at least 1")
        self.max_keys = max_keys
        self.sweep_every = sweep_every
        self._clock = clock
        # "{rule.name}:{digest}" → [count, expires_at]; insertion order = window opening order.
        self._windows: OrderedDict[str, list[float]] = OrderedDict()
        self._since_sweep = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._windows)

    async def hit(self, rule: Rule, key: str) -> Decision:
        wkey = f"{rule.name}:{_digest(key)}"
        with self._lock:  # held for a few dict operations; no await inside
            now = self._clock()
            self._since_sweep += 1
            if self._since_sweep >= self.sweep_every:
                self._sweep(now)
            entry = self._windows.get(wkey)
            if entry is not None and entry[1] <= now:
                del self._windows[wkey]
                entry = None
            if entry is None:
                while len(self._windows) >= self.max_keys:
                    self._windows.popitem(last=False)
                entry = [0, now + rule.window]
                self._windows[wkey] = entry
            elif entry[1] - now > rule.window:  # the rule's window was shortened: as Redis does
                entry[1] = now + rule.window
            entry[0] += 1
            count, expires = int(entry[0]), entry[1]
        return _decide(rule, count, expires - now)

    def _sweep(self, now: float) -> None:
        self._since_sweep = 0
        expired = [k for k, (_, expires) in self._windows.items() if expires <= now]
        for k in expired:
            del self._windows[k]

    async def aclose(self) -> None:
        with self._lock:
            self._windows.clear()


# KEYS[1] the counter; ARGV[1] the window in ms. Returns {count, ms left}. A key without a TTL, or
# with one longer than the window (the rule was changed), gets the window: no counter lives forever.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
local window = tonumber(ARGV[1])
if count == 1 or ttl < 0 or ttl > window then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
return {count, ttl}
"""


class RedisRateLimiter:
    """Fixed windows in Redis, shared by every gateway process. Fails open; see the module docstring."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_REDIS_PREFIX, socket_timeout: float = 0.5,
                 connect_timeout: float = 0.5, failure_backoff: float = 1.0,
                 warn_every: float = 30.0) -> None:
        self.prefix = prefix
        self.failure_backoff = failure_backoff
        self.warn_every = warn_every
        # Imported here: the redis client costs ~16 MB of memory, and most gateways count in memory.
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError

        self._errors = (RedisError, OSError, TimeoutError)
        # One retry, no backoff: enough to replace a pooled connection Redis closed (a restart),
        # short enough that an outage costs a request at most two timeouts before the backoff.
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
            retry=Retry(NoBackoff(), 1))
        self._script = self._client.register_script(_HIT_SCRIPT)
        self._skip_until = 0.0
        self._next_warning = 0.0
        self._failures = 0

    def key_for(self, rule: Rule, key: str) -> str:
        return f"{self.prefix}{rule.name}:{_digest(key)}"

    async def hit(self, rule: Rule, key: str) -> Decision:
        if time.monotonic() < self._skip_until:
            self._failures += 1
            return self._fail_open(rule)
        try:
            count, ms_left = await self._script(keys=[self.key_for(rule, key)],
                                                args=[rule.window * 1000])
        except self._errors as exc:
            self._failed(rule, exc)
            return self._fail_open(rule)
        return _decide(rule, int(count), int(ms_left) / 1000)

    @staticmethod
    def _fail_open(rule: Rule) -> Decision:
        return Decision(allowed=True, rule=rule, remaining=rule.limit, reset=rule.window)

    def _failed(self, rule: Rule, exc: BaseException) -> None:
        now = time.monotonic()
        self._skip_until = now + self.failure_backoff
        self._failures += 1
        if now >= self._next_warning:
            self._next_warning = now + self.warn_every
            log.warning("rate limiter: Redis failed (%s: %s) on rule %s; allowing requests unlimited "
                        "(%d failed or skipped hits since the last warning)",
                        type(exc).__name__, exc, rule.name, self._failures)
            self._failures = 0

    async def aclose(self) -> None:
        await self._client.aclose()


def make_rate_limiter(redis_url: str | None) -> RateLimiter:
    """Redis when a URL is given, else memory ("" and None both mean memory)."""
    if redis_url and redis_url.strip():
        return RedisRateLimiter(redis_url.strip())
    return MemoryRateLimiter()


class RateLimited(Problem):
    """429 with ``Retry-After``, the RateLimit headers and ``policy`` (the rule's name)."""

    status, slug, title = 429, "rate-limited", "Too many requests"

    def __init__(self, decision: Decision, detail: str | None = None) -> None:
        super().__init__(
            detail or f"Too many requests; retry in {decision.reset} s.",
            headers=decision.headers(),
            policy=decision.rule.name,
        )
        self.decision = decision


async def enforce(limiter: RateLimiter, rule: Rule, key: str) -> Decision:
    """Count the request; raise :class:`RateLimited` when it is over the limit."""
    decision = await limiter.hit(rule, key)
    if not decision.allowed:
        raise RateLimited(decision)
    return decision

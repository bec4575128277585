"""Rate limits: the memory and Redis limiters behave the same; 429s are problem+json with the headers.

Every behaviour runs on both limiters (the ``limiter`` fixture). The Redis half uses database 15 at
``TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/15``) under a random key prefix per test and
deletes only those keys afterwards; when Redis cannot be reached it is skipped (failed under CI).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.ratelimit import (
    Decision,
    MemoryRateLimiter,
    RateLimited,
    RateLimiter,
    RedisRateLimiter,
    Rule,
    enforce,
    make_rate_limiter,
)
from tests.support.databases import require

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


async def _redis_or_skip() -> aioredis.Redis:
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        require(False, f"Redis at {REDIS_URL} is not reachable: {exc}")
    return client


async def _delete_prefix(client: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=500)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def redis_admin() -> AsyncIterator[tuple[aioredis.Redis, str]]:
    """A plain client and a fresh key prefix; every key under the prefix is deleted afterwards."""
    client = await _redis_or_skip()
    prefix = f"cv:test:rl:{uuid.uuid4().hex}:"
    try:
        yield client, prefix
    finally:
        await _delete_prefix(client, prefix)
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        lim = MemoryRateLimiter()
        try:
            yield lim
        finally:
            await lim.aclose()
        return
    admin = await _redis_or_skip()
    prefix = f"cv:test:rl:{uuid.uuid4().hex}:"
    rlim = RedisRateLimiter(REDIS_URL, prefix=prefix)
    try:
        yield rlim
    finally:
        await rlim.aclose()
        await _delete_prefix(admin, prefix)
        await admin.aclose()


async def test_allows_exactly_the_limit_then_refuses(limiter: RateLimiter) -> None:
    rule = Rule("t-exact", limit=5, window=60)
    for i in range(5):
        d = await limiter.hit(rule, "203.0.113.7")
        assert d.allowed, i
        assert d.remaining == 4 - i
        assert 0 < d.reset <= 60
        assert d.rule == rule
    for _ in range(3):
        d = await limiter.hit(rule, "203.0.113.7")
        assert not d.allowed
        assert d.remaining == 0
        assert 0 < d.reset <= 60


async def test_keys_and_rules_are_independent(limiter: RateLimiter) -> None:
    a, b = Rule("t-rule-a", limit=2, window=60), Rule("t-rule-b", limit=2, window=60)
    for _ in range(2):
        assert (await limiter.hit(a, "alice")).allowed
    assert not (await limiter.hit(a, "alice")).allowed

    other_key = await limiter.hit(a, "bob")
    assert other_key.allowed and other_key.remaining == 1
    other_rule = await limiter.hit(b, "alice")
    assert other_rule.allowed and other_rule.remaining == 1
    assert not (await limiter.hit(a, "alice")).allowed  # still refused where it was


async def test_allows_again_after_the_window(limiter: RateLimiter) -> None:
    rule = Rule("t-window", limit=2, window=1)
    assert (await limiter.hit(rule, "k")).allowed
    assert (await limiter.hit(rule, "k")).allowed
    refused = await limiter.hit(rule, "k")
    assert not refused.allowed and refused.reset == 1

    await asyncio.sleep(1.1)
    again = await limiter.hit(rule, "k")
    assert again.allowed and again.remaining == 1


async def test_refused_hits_do_not_extend_the_window(limiter: RateLimiter) -> None:
    rule = Rule("t-hammer", limit=1, window=1)
    assert (await limiter.hit(rule, "k")).allowed
    for _ in range(5):
        await asyncio.sleep(0.15)
        assert not (await limiter.hit(rule, "k")).allowed
    await asyncio.sleep(0.4)  # 1.15 s after the window opened
    assert (await limiter.hit(rule, "k")).allowed


async def test_concurrent_hits_are_counted_exactly(limiter: RateLimiter) -> None:
    rule = Rule("t-concurrent", limit=10, window=60)
    decisions = await asyncio.gather(*(limiter.hit(rule, "same-key") for _ in range(50)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 10
    assert sorted(d.remaining for d in allowed) == list(range(10))
    assert all(d.remaining == 0 for d in decisions if not d.allowed)


async def test_concurrent_hits_from_several_gateways_share_one_count(redis_admin) -> None:
    _, prefix = redis_admin
    gateways = [RedisRateLimiter(REDIS_URL, prefix=prefix) for _ in range(3)]
    rule = Rule("t-shared", limit=10, window=60)
    try:
        decisions = await asyncio.gather(*(gateways[i % 3].hit(rule, "k") for i in range(60)))
    finally:
        for g in gateways:
            await g.aclose()
    assert sum(d.allowed for d in decisions) == 10


async def test_rate_limited_is_a_problem_json_429(limiter: RateLimiter) -> None:
    rule = Rule("login-account", limit=1, window=300)
    ok = await enforce(limiter, rule, "user@example.com")
    assert ok.allowed and "Retry-After" not in ok.headers()
    assert ok.headers()["RateLimit"] == '"login-account";r=0;t=' + str(ok.reset)

    with pytest.raises(RateLimited) as caught:
        await enforce(limiter, rule, "user@example.com")
    decision = caught.value.decision
    resp = caught.value.to_response()

    assert resp.status_code == 429
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.headers["retry-after"] == str(decision.reset)
    assert 1 <= int(resp.headers["retry-after"]) <= 300
    assert resp.headers["ratelimit-policy"] == '"login-account";q=1;w=300'
    assert re.fullmatch(r'"login-account";r=0;t=(\d+)', resp.headers["ratelimit"])
    assert resp.headers["ratelimit"].endswith(f";t={decision.reset}")
    body = orjson.loads(resp.body)
    assert body["type"] == "http://localhost:8000/problems/rate-limited"
    assert body["title"] == "Too many requests"
    assert body["status"] == 429
    assert body["policy"] == "login-account"


def test_decision_headers() -> None:
    rule = Rule("search", limit=100, window=60)
    assert Decision(True, rule, remaining=42, reset=17).headers() == {
        "RateLimit-Policy": '"search";q=100;w=60',
        "RateLimit": '"search";r=42;t=17',
    }
    assert Decision(False, rule, remaining=0, reset=9).headers()["Retry-After"] == "9"


@pytest.mark.parametrize("name,limit,window", [
    ('a"b', 1, 1), ("a b", 1, 1), ("", 1, 1), ("x:*", 1, 1), ("ok", 0, 1), ("ok", 1, 0),
])
def test_rules_are_checked(name: str, limit: int, window: int) -> None:
    with pytest.raises(ValueError):
        Rule(name, limit, window)


async def test_memory_key_cap_holds() -> None:
    lim = MemoryRateLimiter(max_keys=100)
    rule = Rule("t-cap", limit=3, window=600)
    for i in range(5_000):
        await lim.hit(rule, f"bot-{uuid.uuid4().hex}-{i}")
        assert len(lim) <= 100
    # The newest windows are the ones kept: a key just seen still counts.
    assert (await lim.hit(rule, "real-user")).remaining == 2
    for i in range(99):
        await lim.hit(rule, f"more-{i}")
    assert (await lim.hit(rule, "real-user")).remaining == 1


async def test_memory_sweep_purges_expired_windows() -> None:
    now = [1000.0]
    lim = MemoryRateLimiter(max_keys=10_000, sweep_every=50, clock=lambda: now[0])
    rule = Rule("t-sweep", limit=5, window=10)
    for i in range(40):
        await lim.hit(rule, f"old-{i}")
    assert len(lim) == 40
    now[0] += 11  # every window is over
    for i in range(10):  # the 50th hit sweeps
        await lim.hit(rule, f"new-{i}")
    assert len(lim) == 10  # the 40 expired windows are gone, the 10 new ones kept


async def test_memory_reset_counts_down_with_the_clock() -> None:
    now = [0.0]
    lim = MemoryRateLimiter(clock=lambda: now[0])
    rule = Rule("t-clock", limit=1, window=60)
    assert (await lim.hit(rule, "k")).reset == 60
    now[0] = 45.2
    refused = await lim.hit(rule, "k")
    assert not refused.allowed and refused.reset == 15
    now[0] = 60.0
    assert (await lim.hit(rule, "k")).allowed


async def test_redis_keys_are_prefixed_hashed_and_expire(redis_admin) -> None:
    client, prefix = redis_admin
    lim = RedisRateLimiter(REDIS_URL, prefix=prefix)
    rule = Rule("t-keys", limit=3, window=30)
    raw = "evil*key\r\nFLUSHALL {tag}"
    try:
        await lim.hit(rule, raw)
    finally:
        await lim.aclose()
    keys = [k.decode() async for k in client.scan_iter(match=prefix + "*")]
    assert len(keys) == 1
    assert re.fullmatch(re.escape(prefix) + r"t-keys:[0-9a-f]{32}", keys[0])
    assert 0 < await client.pttl(keys[0]) <= 30_000


async def test_redis_default_prefix() -> None:
    lim = RedisRateLimiter(CLOSED_PORT_URL)
    try:
        assert lim.key_for(Rule("login-account", 1, 1), "x").startswith("cv:rl:login-account:")
    finally:
        await lim.aclose()


@pytest.mark.parametrize("backoff", [1.0, 0.0], ids=["backoff", "no-backoff"])
async def test_redis_down_fails_open(caplog: pytest.LogCaptureFixture, backoff: float) -> None:
    lim = RedisRateLimiter(CLOSED_PORT_URL, socket_timeout=0.2, connect_timeout=0.2,
                           failure_backoff=backoff)
    calls = 0
    script = lim._script

    async def counting(**kwargs):
        nonlocal calls
        calls += 1
        return await script(**kwargs)

    lim._script = counting
    rule = Rule("t-down", limit=1, window=60)
    caplog.set_level(logging.WARNING, logger="gateway.ratelimit")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        decisions = [await lim.hit(rule, "k") for _ in range(5)]
        assert loop.time() - started < 2
        assert (await enforce(lim, rule, "k")).allowed  # no RateLimited, no exception
    finally:
        await lim.aclose()
    assert all(d.allowed and d.remaining == 1 and d.reset == 60 for d in decisions)
    # With a backoff Redis is asked once; without, every time. Either way: one warning, not six.
    assert calls == (1 if backoff else 6)
    warnings = [r for r in caplog.records if r.name == "gateway.ratelimit" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis" in warnings[0].getMessage()


async def test_redis_counter_never_outlives_its_window(redis_admin) -> None:
    client, prefix = redis_admin
    lim = RedisRateLimiter(REDIS_URL, prefix=prefix)
    rule = Rule("t-ttl", limit=5, window=10)
    try:
        await client.set(lim.key_for(rule, "no-ttl"), 3)  # e.g. written by hand, no expiry
        await client.set(lim.key_for(rule, "long-ttl"), 3, ex=3600)  # the rule's window was shortened
        for key in ("no-ttl", "long-ttl"):
            d = await lim.hit(rule, key)
            assert d.allowed and d.remaining == 1 and d.reset <= 10
            assert 0 < await client.pttl(lim.key_for(rule, key)) <= 10_000
    finally:
        await lim.aclose()


async def test_make_rate_limiter() -> None:
    for url in (None, "", "  "):
        lim = make_rate_limiter(url)
        assert isinstance(lim, MemoryRateLimiter) and isinstance(lim, RateLimiter)
        await lim.aclose()
    lim = make_rate_limiter(REDIS_URL)
    assert isinstance(lim, RedisRateLimiter) and isinstance(lim, RateLimiter)
    await lim.aclose()

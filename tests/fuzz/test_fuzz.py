"""Schemathesis against the running marketplace: the gateway's merged OpenAPI as a grower, a buyer and
an anonymous caller, and each service's own OpenAPI, on fresh databases. No server error, no reply
that breaks its own schema, no undocumented status code or content type (see tests/fuzz/harness.py).

`make test` runs the bounded pass: a fixed seed, few examples per operation, SQLite. `make fuzz` runs
the long one: FUZZ_EXAMPLES=100 and the stateful phase, a random seed (printed on failure), and
FUZZ_BACKEND=postgresql for PostgreSQL too.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.fuzz import harness
from tests.support.databases import sqlite_urls
from tests.support.fullstack import full_stack

pytestmark = pytest.mark.slow

# Generous limits: the fuzzer registers, signs in and orders far faster than any person, and a 429
# would hide the operation behind it. The limits themselves are tested in tests/gateway/test_ratelimit.py.
UNLIMITED = {name: (1_000_000, 60) for name in ("login-account", "login-ip", "register-ip", "api-key", "order-ip")}
BACKENDS = [b.strip() for b in os.environ.get("FUZZ_BACKEND", "sqlite").split(",") if b.strip()]


@pytest.fixture(params=BACKENDS)
def fuzz_db_urls(request: pytest.FixtureRequest, tmp_path):
    """Fresh databases for each run: SQLite files in the test's folder, or the session's PostgreSQL."""
    if request.param == "sqlite":
        yield sqlite_urls(tmp_path)
        return
    dbs = request.getfixturevalue("postgres")
    try:
        yield dbs.urls
    finally:
        dbs.empty()


async def fuzz(db_urls, target: str, identities: list[str], **overrides) -> None:
    async with full_stack(db_urls, rate_limits=UNLIMITED) as s:
        world = await harness.seed(s)
        found: list[str] = []
        for identity in identities:
            if identity != "anonymous":
                await harness.sign_in(s, world)
            # The bounded pass runs the coverage phase (boundary and negative values of every input,
            # the bulk of its requests) once, through the gateway as the grower.
            coverage = harness.LONG or (target == "gateway" and identity == "grower")
            cfg = harness.config(world, identity, target, coverage=coverage, **overrides)
            exclude = harness.SELF_DESTRUCTIVE if identity != "anonymous" and target == "gateway" else []
            failures, tested = await asyncio.to_thread(harness.run, s.urls[target], cfg, exclude=exclude)
            assert tested > 0, f"{target}: nothing was tested"
            if failures:
                found.append(f"== {target} as {identity} ==\n{harness.report(failures)}")
            if exclude:
                # The operations that end the identity, last and on their own.
                failures, _ = await asyncio.to_thread(harness.run, s.urls[target], cfg, include=exclude)
                if failures:
                    found.append(f"== {target} as {identity}, self-destructive ==\n{harness.report(failures)}")
        assert not found, "\n\n".join(found)


@pytest.mark.parametrize("identity", ["grower", "buyer", "anonymous"])
async def test_gateway_merged_openapi(fuzz_db_urls, identity: str) -> None:
    await fuzz(fuzz_db_urls, "gateway", [identity])


@pytest.mark.parametrize("service", ["catalog", "orders", "notify"])
async def test_service_openapi(fuzz_db_urls, service: str) -> None:
    await fuzz(fuzz_db_urls, service, ["grower", "buyer", "anonymous"] if harness.LONG else ["grower"])

"""The gateway (and the services' own clients) on several replicas of a service, as real processes: the
requests are spread, a killed replica is skipped, a request that never reached a replica (connection
refused) goes to the next whatever its method, and one a replica may have received before it died is
sent again only when it is idempotent."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys

import httpx
import pytest

from common.balancing import UpstreamPool, split_urls
from common.transport import ServiceClient
from tests.apps import make_app
from tests.support.servers import ROOT, free_port, serve_in_thread, wait_until_up


class Stub:
    """One replica (tests/support/stub_upstream.py) as a process of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.stub_upstream", str(self.port)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_up(f"{self.url}/_hits", proc=self.proc)

    def hits(self) -> dict[str, int]:
        return httpx.get(f"{self.url}/_hits", timeout=5).json()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@contextlib.contextmanager
def stubs(count: int):
    started = [Stub() for _ in range(count)]
    try:
        yield started
    finally:
        for stub in started:
            if stub.proc.poll() is None:
                stub.kill()


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connections are refused


@contextlib.asynccontextmanager
async def gateway_on(catalog_url: str, tmp_path):
    db = {"gateway": f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"}
    with serve_in_thread(make_app("gateway", db, catalog_url=catalog_url)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=20) as client:
            yield client


def test_the_url_settings_take_a_comma_list() -> None:
    assert split_urls(" http://a:1, http://b:2/ ") == ["http://a:1", "http://b:2"]
    for wrong in ("", "http://a:1/catalog", "ftp://a:1"):
        with pytest.raises(ValueError):
            split_urls(wrong)


def test_a_replica_that_refused_is_tried_last_for_a_while() -> None:
    pool = UpstreamPool(["http://a:1", "http://b:2", "http://c:3"], down_for=60)
    firsts = {pool.order()[0] for _ in range(3)}
    assert len(firsts) == 3, "round robin"
    pool.mark_down(pool.origins[0])
    for _ in range(3):
        order = pool.order()
        assert order[-1] == pool.origins[0] and len(order) == 3, "tried last, not never"
    pool.mark_up(pool.origins[0])
    assert {pool.order()[0] for _ in range(3)} == set(pool.origins)


async def test_gets_are_spread_and_go_on_when_a_replica_is_killed(tmp_path) -> None:
    with stubs(2) as (a, b):
        async with gateway_on(f"{a.url},{b.url}", tmp_path) as gw:
            ports = [(await gw.get(f"/api/v1/products/{i}")).json()["port"] for i in range(10)]
            assert set(ports) == {a.port, b.port}, "both replicas take a share"
            a.kill()
            for i in range(20):
                resp = await gw.get(f"/api/v1/products/{i}")
                assert resp.status_code == 200, resp.text
                assert resp.json()["port"] == b.port
            b.kill()
            resp = await gw.get("/api/v1/products/1")
            assert resp.status_code == 503, "every replica gone: the problem as before"


async def test_a_post_refused_a_connection_goes_to_the_next_replica(tmp_path) -> None:
    with stubs(1) as (live,):
        async with gateway_on(f"{dead_url()},{live.url}", tmp_path) as gw:
            for i in range(4):  # whichever replica the round robin starts at
                resp = await gw.post("/api/v1/products", json={"n": i})
                assert resp.status_code == 200, resp.text
                assert resp.json()["port"] == live.port
            assert live.hits()["POST /api/v1/products"] == 4, "each POST arrived once"


async def test_a_post_whose_replica_died_mid_request_is_not_sent_again(tmp_path) -> None:
    with stubs(2) as (a, b):
        async with gateway_on(f"{a.url},{b.url}", tmp_path) as gw:
            for i in range(4):  # kept-alive connections to both: the one it goes on is a reused one
                assert (await gw.get(f"/api/v1/products/{i}")).status_code == 200
            resp = await gw.post("/api/v1/products/die", json={"name": "Sen hồng"})
            assert resp.status_code == 502, resp.text
            survivor = b if a.proc.wait(10) is not None and b.proc.poll() is None else a
            assert survivor.proc.poll() is None
            assert "POST /api/v1/products/die" not in survivor.hits(), "the POST was not sent twice"


async def test_an_idempotent_request_whose_replica_died_goes_to_the_next(tmp_path) -> None:
    with stubs(2) as (a, b):
        async with gateway_on(f"{a.url},{b.url}", tmp_path) as gw:
            resp = await gw.post("/api/v1/products/die", json={"name": "Sen hồng"},
                                 headers={"Idempotency-Key": "k-1"})
            # The first replica died with it; the second received it too and died the same way:
            # both tried, and the client is told the service broke off.
            assert resp.status_code == 502
            await asyncio.sleep(0.2)
            assert a.proc.poll() is not None and b.proc.poll() is not None, "sent to each replica in turn"


async def test_the_services_own_clients_spread_and_retry_only_what_they_mark_idempotent() -> None:
    with stubs(2) as (a, b):
        plain = ServiceClient(f"{dead_url()},{a.url}", timeout=httpx.Timeout(5), headers={})
        try:
            assert (await plain.post("/internal/x", b"{}")).json()["port"] == a.port  # refused → next
            with pytest.raises(httpx.RemoteProtocolError):
                await plain.post("/internal/die", b"{}")  # a died on it: not sent to anyone else
        finally:
            await plain.aclose()
        keyed = ServiceClient(f"{a.url},{b.url}", timeout=httpx.Timeout(5), headers={}, idempotent=True)
        try:
            assert (await keyed.post("/internal/x", b"{}")).json()["port"] == b.port  # a is dead: skipped
        finally:
            await keyed.aclose()

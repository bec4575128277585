"""`make run-cluster` (deploy/cluster.py) as a user runs it, on the machine's PostgreSQL, NATS and Redis,
with databases, a stream, a Redis database and ports of the test's own: two replicas of every app, the
pid of each in its file, the marketplace on the shared port spreading each service's traffic over its
replicas; a replica killed (SIGKILL) and the marketplace goes on; a photo uploaded through one catalog
replica served by the other; `stop` stops them all."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.settings import DEFAULT_RATE_LIMITS
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.catalog.test_photos import phone_jpeg
from tests.events.stack import ORDER
from tests.gateway.test_identity import grower
from tests.support.databases import PG_ADMIN_DSN, pg_reachable, require
from tests.support.servers import ROOT

APPS = ("gateway", "catalog", "orders", "notify")


def _free_base() -> int:
    """A base port whose cluster ports (base, base+10…13, base+20…23) are all free."""
    import random
    import socket

    for _ in range(50):
        base = random.randrange(20_000, 60_000, 100)
        try:
            for port in (base, *range(base + 10, base + 14), *range(base + 20, base + 24)):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports for a cluster")


async def _drop(prefix: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=10)
    try:
        for app in APPS:
            await conn.execute(f'DROP DATABASE IF EXISTS "{prefix}_{app}" WITH (FORCE)')
    finally:
        await conn.close()


async def _drop_stream(namespace: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222", connect_timeout=3, max_reconnect_attempts=0)
    try:
        await nc.jetstream().delete_stream(f"{namespace.upper()}_EVENTS")
    except Exception:  # noqa: BLE001 - never made
        pass
    await nc.close()


def _requests_served(url: str, route: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(float(m.group(1)) for m in re.finditer(
        r'^http_requests_total\{[^}]*route="' + re.escape(route) + r'"[^}]*\} (\S+)$', text, re.M))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the module (starting eight apps is the slow part): the rolling restart runs on
    it first, then the test that kills replicas and stops it."""
    require(pg_reachable() is None, pg_reachable() or "")
    tmp_path = tmp_path_factory.mktemp("cluster")
    tag = uuid.uuid4().hex[:6]
    base, prefix, namespace, folder = _free_base(), f"cv_test_cl{tag}", f"cl{tag}", tmp_path / "cluster"
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_"))},
           "CLUSTER_PORT": str(base), "CLUSTER_DATABASE_PREFIX": prefix, "CLUSTER_NAMESPACE": namespace,
           "CLUSTER_DIR": str(folder), "CLUSTER_POSTGRES": PG_ADMIN_DSN, "LOG_LEVEL": "WARNING",
           # Counters in the cluster's Redis outlive a run: a test run again soon must not be refused.
           "GATEWAY_RATE_LIMITS": json.dumps({**DEFAULT_RATE_LIMITS, "register-ip": (1000, 60),
                                               "order-ip": (1_000_000, 60)})}
    log = (tmp_path / "cluster.log").open("wb")
    runner = subprocess.Popen([sys.executable, "deploy/cluster.py", "run"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while b"replicas of every app" not in (tmp_path / "cluster.log").read_bytes():
            assert runner.poll() is None, (tmp_path / "cluster.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the cluster did not come up"
            time.sleep(0.5)
        yield base, folder, env, runner
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGTERM)
            runner.wait(60)
        log.close()
        asyncio.run(_drop(prefix))
        asyncio.run(_drop_stream(namespace))


def pids(folder: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in folder.glob("*-*.pid")}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def url(base: int, app: str, n: int) -> str:
    return f"http://127.0.0.1:{base + 10 * n + APPS.index(app)}"


async def _grower_with_a_variety(gw: httpx.AsyncClient, phone: str) -> tuple[dict, int]:
    assert (await gw.post("/api/v1/auth/register", json=grower(phone))).status_code == 201
    login = phone.replace(" ", "")
    signed_in = await gw.post("/api/v1/auth/token", json={"login": login, "password": grower()["password"]})
    assert signed_in.status_code == 200, signed_in.text
    me = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
    assert (await gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=me)).status_code == 201
    product = {**PRODUCT, "variants": [{**PRODUCT["variants"][0], "stock": 100_000, "wholesale_tiers": []}]}
    created = await gw.post("/api/v1/products", json=product, headers=me)
    assert created.status_code == 201, created.text
    return me, created.json()["variants"][0]["id"]


RETRIABLE = (502, 503, 504)


async def test_a_rolling_restart_under_load_loses_and_doubles_nothing(cluster) -> None:
    """Buyers place orders and browse through :base while the runner restarts each replica of each
    app in turn (SIGTERM, start, wait). A client retries only what is idempotent: a GET, or an order
    with the same Idempotency-Key; after that every request succeeds, each key is one order, and the
    grower's inbox has each order's notification once."""
    base, folder, env, runner = cluster
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30,
                                 limits=httpx.Limits(keepalive_expiry=2.0)) as gw:
        me, variant = await _grower_with_a_variety(gw, "0912 777 002")
        stop = asyncio.Event()
        placed: dict[str, str] = {}  # Idempotency-Key → order code
        failed: list[str] = []
        retries = {"order": 0, "get": 0}

        async def with_retries(kind: str, send) -> httpx.Response | None:
            for attempt in range(8):
                try:
                    resp = await send()
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if resp.status_code not in RETRIABLE:
                        return resp
                    last = f"{resp.status_code} {resp.text[:200]}"
                retries[kind] += 1
                await asyncio.sleep(0.2 * (attempt + 1))
            failed.append(f"{kind}: {last}")
            return None

        async def buyer() -> None:
            while not stop.is_set():
                key = uuid.uuid4().hex
                resp = await with_retries("order", lambda key=key: gw.post(
                    "/api/v1/orders", json={**ORDER, "lines": [{"variant_id": variant, "quantity": 2}]},
                    headers={"Idempotency-Key": key}))
                if resp is not None:
                    if resp.status_code == 201:
                        placed[key] = resp.json()["code"]
                    else:
                        failed.append(f"order: {resp.status_code} {resp.text[:200]}")
                await asyncio.sleep(0.05)

        async def browser() -> None:
            while not stop.is_set():
                resp = await with_retries("get", lambda: gw.get("/api/v1/products", params={"shop_id": 1}))
                if resp is not None and resp.status_code != 200:
                    failed.append(f"get: {resp.status_code}")
                await asyncio.sleep(0.05)

        streamed: list[dict[int, str]] = [{}, {}]  # per live stream: notification id → order code
        connects = [0, 0]
        streams_done = asyncio.Event()

        async def live(n: int) -> None:
            """A grower's desk: the live stream, reconnecting from the last id it got when it ends."""
            last = 0
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=httpx.Timeout(30, read=60)
                                         ) as desk:
                while not streams_done.is_set():
                    try:
                        async with desk.stream("GET", "/api/v1/notifications/stream", headers=me,
                                               params={"since": last}) as resp:
                            if resp.status_code == 200:
                                connects[n] += 1
                                current = None
                                async for line in resp.aiter_lines():
                                    if line.startswith("id: "):
                                        current = int(line[4:])
                                    elif line.startswith("data: ") and current is not None:
                                        item = json.loads(line[6:])
                                        if item["type"] == "order.placed":
                                            streamed[n][current] = item["data"]["code"]
                                        last = current
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.3)

        desks = [asyncio.ensure_future(live(n)) for n in (0, 1)]
        while connects != [1, 1]:  # noqa: ASYNC110 - a count, not an event
            await asyncio.sleep(0.1)
        load = asyncio.gather(*(buyer() for _ in range(2)), browser())
        await asyncio.sleep(2)
        before = {name: pid for name, pid in pids(folder).items()}
        os.kill(runner.pid, signal.SIGHUP)
        log = folder.parent / "cluster.log"
        deadline = time.monotonic() + 900  # the machine is shared: a replica may take a minute to start
        while b"rolling restart done" not in log.read_bytes():
            assert time.monotonic() < deadline, "the rolling restart did not finish"
            assert runner.poll() is None
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        stop.set()
        await load

        after = pids(folder)
        assert sorted(after) == sorted(before) and not set(after.values()) & set(before.values()), \
            "every replica was restarted"
        print(f"orders placed: {len(placed)}, retries: {retries}")
        assert not failed, failed[:10]
        assert len(placed) > 20, placed
        assert len(set(placed.values())) == len(placed), "one order per key"

        # Each order's notification in the grower's inbox, once.
        deadline = time.monotonic() + 60
        while True:
            codes, cursor = [], None
            while True:
                page = (await gw.get("/api/v1/notifications", headers=me,
                                     params={"limit": 100, **({"cursor": cursor} if cursor else {})})).json()
                codes += [item["data"].get("code") for item in page["items"] if item["type"] == "order.placed"]
                cursor = page.get("next_cursor")
                if not cursor:
                    break
            if len(codes) >= len(placed) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert sorted(codes) == sorted(placed.values())
        # The live streams, reconnected after each replica they went through stopped, missed nothing.
        await asyncio.sleep(3)
        streams_done.set()
        for desk in desks:
            desk.cancel()
        await asyncio.gather(*desks, return_exceptions=True)
        print(f"stream connections: {connects}")
        for got in streamed:
            assert sorted(got.values()) == sorted(placed.values())


async def test_run_cluster_two_replicas_each_spread_survive_a_kill_and_stop(cluster) -> None:
    base, folder, env, runner = cluster
    found = pids(folder)
    assert sorted(found) == sorted(f"{app}-{n}" for app in APPS for n in (1, 2))
    assert all(alive(pid) for pid in found.values())

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30) as gw:
        ready = (await gw.get("/readyz")).json()
        assert ready["status"] == "ok", ready
        # The demo nursery, as `make run` seeds it, through the shared port; each gateway replica
        # spreads the catalog's share over both catalog replicas.
        for _ in range(12):
            assert (await gw.get("/api/v1/products", params={"shop_id": 1})).status_code == 200
        served = [_requests_served(url(base, "catalog", n), "/api/v1/products") for n in (1, 2)]
        assert all(s > 0 for s in served), served
        assert (await gw.get("/s/vuon-sung-co-ut")).status_code == 200

        # A grower of our own: signed up and in through the gateway, a shop and a variety.
        assert (await gw.post("/api/v1/auth/register", json=grower("0912 777 001"))).status_code == 201
        signed_in = await gw.post("/api/v1/auth/token", json={"login": "0912777001", "password": grower()["password"]})
        assert signed_in.status_code == 200, signed_in.text
        tokens = signed_in.json()
        me = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=me)).status_code == 201
        product = (await gw.post("/api/v1/products", json=PRODUCT, headers=me)).json()
        variant = product["variants"][0]["id"]

        # A photo uploaded through catalog replica 1 is served by replica 2 (one shared photo folder).
        async with httpx.AsyncClient(base_url=url(base, "catalog", 1), timeout=60) as one:
            up = await one.post(f"/api/v1/products/{product['id']}/photos", headers=me,
                                files={"file": ("sen.jpg", phone_jpeg(), "image/jpeg")})
            assert up.status_code == 201, up.text
        name = up.json()["url"].rsplit("/", 1)[-1]
        async with httpx.AsyncClient(base_url=url(base, "catalog", 2), timeout=30) as two:
            served_photo = await two.get(f"/media/{name}")
            assert served_photo.status_code == 200 and served_photo.content[:4] == b"RIFF"

        async def order() -> httpx.Response:
            return await gw.post("/api/v1/orders", json={**ORDER, "lines": [{"variant_id": variant, "quantity": 2}]},
                                 headers={"Idempotency-Key": uuid.uuid4().hex})

        assert (await order()).status_code == 201

        # One replica of the catalog and one of the gateway killed outright: the marketplace goes on.
        os.killpg(found["catalog-1"], signal.SIGKILL)
        os.killpg(found["gateway-1"], signal.SIGKILL)
        await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30) as gw:
        statuses = [(await gw.get("/api/v1/products", params={"shop_id": 1})).status_code for _ in range(10)]
        assert statuses == [200] * 10
        placed = await order()
        assert placed.status_code == 201, placed.text

    stopper = await asyncio.create_subprocess_exec(sys.executable, "deploy/cluster.py", "stop", cwd=ROOT, env=env)
    assert await asyncio.wait_for(stopper.wait(), 90) == 0
    runner.wait(30)
    assert not any(alive(pid) for pid in found.values())
    assert not list(folder.glob("*.pid"))

"""`make run-cluster` (deploy/cluster.py) as a user runs it, on the machine's PostgreSQL, NATS and Redis,
with databases, a stream, a Redis database and ports of the test's own: two replicas of every app, the
pid of each in its file, the marketplace on the shared port spreading each service's traffic over its
replicas; a replica killed (SIGKILL) and the marketplace goes on, the runner starting it again; a photo
uploaded through one catalog replica served by the other; `stop` stops them all. Under load (orders,
browsing, two live streams), a rolling restart and then a `kill -9` of one replica of each app in turn:
nothing failed after the clients' retries, lost or doubled, the stock as the orders say."""

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
           # A reservation a killed replica left held is released soon enough for the test to see.
           "CATALOG_RESERVATION_TTL": "20", "CATALOG_RESERVATION_SWEEP_INTERVAL": "2",
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
IN_FLIGHT = "idempotency-key-in-flight"  # 409: the key's first request may still be running; Retry-After


class Market:
    """Two buyers placing orders and one browsing through the shared port, and two grower's desks on
    the live stream, while the test does something to the replicas. A client retries only what is
    idempotent: a GET, or an order with the same Idempotency-Key, after a connection that broke, a
    502/503/504, or a 409 saying the key's first request is still in flight (for as long as
    ``ORDER_PATIENCE``: a key left in flight by a killed replica is taken over after 60 s)."""

    ORDER_PATIENCE = 90.0

    def __init__(self, base: int, gw: httpx.AsyncClient, me: dict, variant: int,
                 desks_first_via: str | None = None) -> None:
        """``desks_first_via``: the address the desks first connect to (else the shared port, as all
        their reconnections)."""
        self.base, self.gw, self.me, self.variant = base, gw, me, variant
        self.desks_first_via = desks_first_via
        self.stop = asyncio.Event()
        self.placed: dict[str, str] = {}  # Idempotency-Key → order code
        self.failed: list[str] = []
        self.retries = {"order": 0, "get": 0}
        self.seen: dict[str, int] = {}  # what a client was answered before a retry, and how often
        self.streamed: list[list[tuple[int, str]]] = [[], []]  # per desk: (notification id, order code)
        self.connects = [0, 0]
        self.streams_done = asyncio.Event()

    async def with_retries(self, kind: str, send) -> httpx.Response | None:
        deadline = time.monotonic() + (self.ORDER_PATIENCE if kind == "order" else 10)
        attempt = 0
        while True:
            wait = 0.2 * min(attempt + 1, 5)
            try:
                resp = await send()
            except httpx.TransportError as exc:
                last = type(exc).__name__
            else:
                problem = resp.json().get("type", "").rsplit("/", 1)[-1] \
                    if resp.headers.get("content-type", "").startswith("application/problem+json") else ""
                if resp.status_code == 409 and problem == IN_FLIGHT and kind == "order":
                    wait = float(resp.headers["Retry-After"])
                elif resp.status_code not in RETRIABLE:
                    return resp
                last = f"{resp.status_code} {problem}"
            self.retries[kind] += 1
            self.seen[f"{kind}: {last}"] = self.seen.get(f"{kind}: {last}", 0) + 1
            attempt += 1
            if time.monotonic() + wait > deadline:
                self.failed.append(f"{kind}: {last}")
                return None
            await asyncio.sleep(wait)

    async def place(self) -> None:
        """One order, with a key of its own, retried until it is placed or given up."""
        key = uuid.uuid4().hex
        resp = await self.with_retries("order", lambda: self.gw.post(
            "/api/v1/orders", json={**ORDER, "lines": [{"variant_id": self.variant, "quantity": 2}]},
            headers={"Idempotency-Key": key}))
        if resp is not None:
            if resp.status_code == 201:
                self.placed[key] = resp.json()["code"]
            else:
                self.failed.append(f"order: {resp.status_code} {resp.text[:200]}")

    async def buyer(self) -> None:
        while not self.stop.is_set():
            await self.place()
            await asyncio.sleep(0.05)

    async def browser(self) -> None:
        while not self.stop.is_set():
            resp = await self.with_retries("get", lambda: self.gw.get("/api/v1/products", params={"shop_id": 1}))
            if resp is not None and resp.status_code != 200:
                self.failed.append(f"get: {resp.status_code}")
            await asyncio.sleep(0.05)

    async def desk(self, n: int) -> None:
        """A grower's desk: the live stream, reconnecting from the last id it got when it ends."""
        last = 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.base}", timeout=httpx.Timeout(30, read=60)
                                     ) as desk:
            while not self.streams_done.is_set():
                via = self.desks_first_via if self.desks_first_via and not self.connects[n] else ""
                try:
                    async with desk.stream("GET", f"{via}/api/v1/notifications/stream", headers=self.me,
                                           params={"since": last}) as resp:
                        if resp.status_code == 200:
                            self.connects[n] += 1
                            current = None
                            async for line in resp.aiter_lines():
                                if line.startswith("id: "):
                                    current = int(line[4:])
                                elif line.startswith("data: ") and current is not None:
                                    item = json.loads(line[6:])
                                    if item["type"] == "order.placed":
                                        self.streamed[n].append((current, item["data"]["code"]))
                                    last = current
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.3)

    async def open(self) -> None:
        """The desks connected, then the buyers and the browser started."""
        self.desks = [asyncio.ensure_future(self.desk(n)) for n in (0, 1)]
        while self.connects != [1, 1]:  # noqa: ASYNC110 - a count, not an event
            await asyncio.sleep(0.1)
        self.load = asyncio.gather(*(self.buyer() for _ in range(2)), self.browser())
        await asyncio.sleep(2)

    async def close_and_check(self) -> None:
        """The load stopped (each request in flight finished or given up); then nothing failed, each
        key is one order, and each order's notification is in the grower's inbox and on both live
        streams once."""
        await asyncio.sleep(2)
        self.stop.set()
        await self.load
        placed = self.placed
        print(f"orders placed: {len(placed)}, retries: {self.retries}, seen before a retry: {self.seen}")
        assert not self.failed, self.failed[:10]
        assert len(placed) > 20, placed
        assert len(set(placed.values())) == len(placed), "one order per key"

        deadline = time.monotonic() + 60  # a notify replica killed holding an event: JetStream resends it
        while True:
            codes, cursor = [], None
            while True:
                page = (await self.gw.get("/api/v1/notifications", headers=self.me,
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
        self.streams_done.set()
        for desk in self.desks:
            desk.cancel()
        await asyncio.gather(*self.desks, return_exceptions=True)
        print(f"stream connections: {self.connects}")
        for got in self.streamed:
            assert len({i for i, _ in got}) == len(got), "each notification once on a stream"
            assert sorted(code for _, code in got) == sorted(placed.values())


async def test_a_rolling_restart_under_load_loses_and_doubles_nothing(cluster) -> None:
    """Buyers place orders and browse through :base while the runner restarts each replica of each
    app in turn (SIGTERM, start, wait): after the clients' retries every request succeeds, each key
    is one order, and the grower's inbox and live streams have each order's notification once."""
    base, folder, env, runner = cluster
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30,
                                 limits=httpx.Limits(keepalive_expiry=2.0)) as gw:
        me, variant = await _grower_with_a_variety(gw, "0912 777 002")
        market = Market(base, gw, me, variant)
        await market.open()
        before = {name: pid for name, pid in pids(folder).items()}
        os.kill(runner.pid, signal.SIGHUP)
        log = folder.parent / "cluster.log"
        deadline = time.monotonic() + 900  # the machine is shared: a replica may take a minute to start
        while b"rolling restart done" not in log.read_bytes():
            assert time.monotonic() < deadline, "the rolling restart did not finish"
            assert runner.poll() is None
            await asyncio.sleep(0.5)
        await market.close_and_check()
        after = pids(folder)
        assert sorted(after) == sorted(before) and not set(after.values()) & set(before.values()), \
            "every replica was restarted"
        await _stock_settled(env, variant, market.placed)


async def _stock_settled(env: dict, variant: int, placed: dict[str, str]) -> dict[str, set[str]]:
    """The stock of the variety as its orders say: every order stored once, its reservation committed at
    the catalog; every other reservation (a placing cut short) released by the sweeper; the stock fell
    by what the orders hold, no more."""
    prefix = env["CLUSTER_DATABASE_PREFIX"]
    base_dsn = PG_ADMIN_DSN.rsplit("/", 1)[0]
    catalog = await asyncpg.connect(f"{base_dsn}/{prefix}_catalog", timeout=10)
    orders = await asyncpg.connect(f"{base_dsn}/{prefix}_orders", timeout=10)
    try:
        deadline = time.monotonic() + 20 + 2 * int(env["CATALOG_RESERVATION_TTL"])
        while True:
            stored = await orders.fetch(
                "SELECT o.code, o.reservation_id, o.reservation_state, l.quantity FROM orders o "
                "JOIN order_lines l ON l.order_id = o.id WHERE l.variant_id = $1", variant)
            held = await catalog.fetch(
                "SELECT r.id, r.status, l.quantity FROM reservations r "
                "JOIN reservation_lines l ON l.reservation_id = r.id WHERE l.variant_id = $1", variant)
            stock = await catalog.fetchval("SELECT stock FROM variants WHERE id = $1", variant)
            states = {r["reservation_state"] for r in stored}
            if (states == {"committed"} and not [r for r in held if r["status"] == "held"]) \
                    or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    finally:
        await catalog.close()
        await orders.close()
    assert sorted(r["code"] for r in stored) == sorted(placed.values()), "each order stored once"
    assert {r["reservation_state"] for r in stored} == {"committed"}
    by_status: dict[str, set[str]] = {}
    for r in held:
        by_status.setdefault(r["status"], set()).add(r["id"])
    print(f"reservations: { {k: len(v) for k, v in by_status.items()} }")
    assert by_status.get("committed", set()) == {r["reservation_id"] for r in stored}
    assert set(by_status) <= {"committed", "released"}, "no stock left held"
    assert stock == 100_000 - sum(r["quantity"] for r in stored)
    return by_status


def _kill_9(folder: Path, app: str, n: int) -> int:
    pid = pids(folder)[f"{app}-{n}"]
    os.killpg(pid, signal.SIGKILL)
    print(f"killed {app}-{n}", flush=True)
    return pid


async def _back(base: int, folder: Path, app: str, n: int, old: int) -> None:
    """The runner started the killed replica again; it answers /healthz."""
    name = f"{app}-{n}"
    deadline = time.monotonic() + 180  # a shared machine: a start may take a minute
    async with httpx.AsyncClient(timeout=2) as probe:
        while True:
            assert time.monotonic() < deadline, f"{name} was not started again"
            new = pids(folder).get(name)
            if new not in (None, old):
                try:
                    if (await probe.get(f"{url(base, app, n)}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.3)


async def _keys_in_flight(env: dict) -> int:
    conn = await asyncpg.connect(f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{env['CLUSTER_DATABASE_PREFIX']}_orders",
                                 timeout=10)
    try:
        return await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE state = 'in_flight'")
    finally:
        await conn.close()


def _live_streams(base: int, n: int) -> float:
    found = re.search(r"^notify_live_streams (\S+)$", httpx.get(f"{url(base, 'notify', n)}/metrics", timeout=5).text,
                      re.M)
    return float(found.group(1)) if found else 0.0


async def test_kill_9_of_one_replica_of_each_app_under_load_loses_and_doubles_nothing(cluster) -> None:
    """The same load as the rolling restart, while one replica of each app in turn is killed outright
    (SIGKILL: no request it holds finishes, no stream is ended whole, nothing given back) and started
    again by the runner. Which replica, so that the kill hits something:

    - orders-1 with orders on it halfway through placing (both catalogs paused with SIGSTOP a moment,
      so that every order in flight has claimed its Idempotency-Key and waits on its reservation):
      the gateway sends each again, by its key, to orders-2, which answers 409 (Retry-After) until
      the key, left claimed by the dead replica, is taken over; the reservations the dead replica
      asked for stay held until the catalog's sweeper releases them;
    - the notify replica carrying a live stream; catalog-1 (the reservations and the listing);
    - gateway-2, which both desks first connected through: both streams cut, both resume.

    After the clients' retries: every request succeeded, each key is one order, stored once, its
    reservation committed and every other one released, the stock as the orders say; each
    notification in the inbox and on both live streams once."""
    base, folder, env, runner = cluster
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{base}", timeout=30,
                                 limits=httpx.Limits(keepalive_expiry=2.0)) as gw:
        me, variant = await _grower_with_a_variety(gw, "0912 777 003")
        market = Market(base, gw, me, variant, desks_first_via=url(base, "gateway", 2))
        await market.open()

        catalogs = [pids(folder)[f"catalog-{n}"] for n in (1, 2)]
        for pid in catalogs:
            os.killpg(pid, signal.SIGSTOP)
        try:
            halfway = [asyncio.ensure_future(market.place()) for _ in range(6)]
            deadline = time.monotonic() + 10
            # Each claimed (the six, a buyer's or two), then stuck on its reservation: a count, not an event.
            while await _keys_in_flight(env) < 6 + 1 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            old = _kill_9(folder, "orders", 1)
        finally:
            for pid in catalogs:
                os.killpg(pid, signal.SIGCONT)
        await _back(base, folder, "orders", 1, old)
        await asyncio.sleep(1.5)

        streams = {n: _live_streams(base, n) for n in (1, 2)}
        for app, n in (("notify", max(streams, key=streams.get)), ("catalog", 1), ("gateway", 2)):
            await _back(base, folder, app, n, _kill_9(folder, app, n))
            await asyncio.sleep(1.5)
            assert runner.poll() is None
        await asyncio.gather(*halfway)
        await market.close_and_check()
        print(f"live streams per notify replica before its kill: {streams}")
        assert market.seen.get(f"order: 409 {IN_FLIGHT}"), "an order was halfway on the killed orders replica"
        assert min(market.connects) >= 2, "both live streams were cut and resumed"
        reservations = await _stock_settled(env, variant, market.placed)
        assert reservations.get("released"), "the reservations of the orders cut short were released"


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

    found = pids(folder)  # the two killed were started again by the runner
    stopper = await asyncio.create_subprocess_exec(sys.executable, "deploy/cluster.py", "stop", cwd=ROOT, env=env)
    assert await asyncio.wait_for(stopper.wait(), 90) == 0
    runner.wait(30)
    assert not any(alive(pid) for pid in found.values())
    assert not list(folder.glob("*.pid"))

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


@pytest.fixture
def cluster(tmp_path):
    require(pg_reachable() is None, pg_reachable() or "")
    tag = uuid.uuid4().hex[:6]
    base, prefix, namespace, folder = _free_base(), f"cv_test_cl{tag}", f"cl{tag}", tmp_path / "cluster"
    env = {**{k: v for k, v in os.environ.items()
              if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_"))},
           "CLUSTER_PORT": str(base), "CLUSTER_DATABASE_PREFIX": prefix, "CLUSTER_NAMESPACE": namespace,
           "CLUSTER_DIR": str(folder), "CLUSTER_POSTGRES": PG_ADMIN_DSN, "LOG_LEVEL": "WARNING",
           # Counters in the cluster's Redis outlive a run: a test run again soon must not be refused.
           "GATEWAY_RATE_LIMITS": json.dumps({**DEFAULT_RATE_LIMITS, "register-ip": (1000, 60)})}
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

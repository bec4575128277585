"""How soon does a grower see a new order? Order placed → on the grower's live stream, per event transport.

Starts the four apps (notify, catalog, orders, gateway) as subprocesses in a temporary directory, with
their own databases (SQLite files there, or ``--backend postgres``), registers a grower through the
gateway, opens a shop and a variety, opens the grower's live stream (``GET /api/v1/notifications/stream``,
server-sent events, through the gateway) and places orders as guests through the gateway:

    steady  ``--orders`` orders at ``--rate`` per second (open loop: each on its own schedule)
    burst   ``--orders`` orders as fast as ``--concurrency`` guests can place them (closed loop)

Each order is matched to its event on the stream by its code. Latency runs from just before the
order's POST is sent to the arrival of its event on the stream; the time to the POST's 201 is shown
beside it, and the stages between (by the order's and the inbox row's ``created_at``), to see where
the time goes. Prints p50/p95/p99/max and how many events were lost (must be 0), for HTTP push (the embedded
default) and NATS JetStream (``EVENT_BUS_URL=nats://…``, a namespace of its own, removed afterwards).
Target: p95 ≤ 500 ms at a steady rate.

    make bench-events
    .venv/bin/python bench/events.py --transport both --orders 200 --rate 5
    .venv/bin/python bench/events.py --transport nats --backend postgres --mode burst --concurrency 16

See bench/README.md for every option and docs/performance.md for figures. Not part of the test suite.
Every process it starts is stopped when it ends, also on Ctrl-C, SIGTERM or an error; databases it
made on PostgreSQL and the NATS stream are removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# bench/gateway.py would shadow the `gateway` package for anything imported from here: put the
# repository, not bench/, first on the path.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

from bench.harness import (  # noqa: E402
    VENV_PYTHON,
    BenchError,
    Processes,
    cpu_seconds,
    ensure_venv,
    free_port,
    load_average,
    machine,
    machine_busy_seconds,
    own_cpu_seconds,
    wait_ready,
)

TARGET_P95_MS = 500.0
APPS = ("notify", "catalog", "orders", "gateway")
PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://root@127.0.0.1:5432/postgres")
NATS_URL = "nats://127.0.0.1:4222"
# Every bench order comes from 127.0.0.1: the gateway's per-address limit on order creation (20 a
# minute by default) is raised to this for the bench's gateway only.
ORDER_LIMIT = 1_000_000
PROGRESS_EVERY = 5.0
# time.time() − time.monotonic(): turns the servers' created_at (wall clock, same machine) into the
# monotonic clock the bench measures with.
WALL_OFFSET = time.time() - time.monotonic()

PASSWORD = "Sen-hong-Dong-Thap-7"
GROWER = {"role": "grower", "name": "Vườn Sen Bà Tư", "phone": "0912 345 678", "password": PASSWORD}
SHOP = {
    "name": "Vườn Sen Bà Tư", "description": "Sen và súng Đồng Tháp", "province_code": "92",
    "ward_code": "31135", "street": "12 Lê Lợi", "phone": "0912 345 678",
    "delivery": {"pickup": True, "flat_fee": 30000},
}
PRODUCT = {
    "name": "Súng Thái đỏ", "description": "Hoa đỏ, nở ngày", "category": "water_lily", "status": "active",
    "variants": [{"label": "Củ giống", "retail_price": 45000, "stock": 1_000_000, "min_order_quantity": 1}],
}
CONTACT_PHONE = "0987 654 321"
ADDRESS = {"province_code": "92", "ward_code": "31135", "street": "9 Mậu Thân"}


# ── child processes ──────────────────────────────────────────────────────────────────────────────


# ── databases and the bus ────────────────────────────────────────────────────────────────────────


class Databases:
    """One database per app: SQLite files in the run's directory, or PostgreSQL databases made for
    the run and dropped after it."""

    def __init__(self, backend: str, folder: Path, admin_dsn: str) -> None:
        self.backend, self.admin_dsn = backend, admin_dsn
        self.names: list[str] = []
        if backend == "sqlite":
            self.urls = {app: f"sqlite+aiosqlite:///{folder / f'{app}.db'}" for app in APPS}
            return
        tag = uuid.uuid4().hex[:8]
        base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        self.names = [f"cv_bench_events_{tag}_{app}" for app in APPS]
        self.urls = {app: f"{base}/{name}" for app, name in zip(APPS, self.names, strict=True)}
        self._admin([f'CREATE DATABASE "{name}"' for name in self.names])

    def _admin(self, statements: list[str]) -> None:
        async def go() -> None:
            import asyncpg

            conn = await asyncpg.connect(self.admin_dsn, timeout=10)
            try:
                for stmt in statements:
                    await conn.execute(stmt)
            finally:
                await conn.close()

        asyncio.run(go())

    def drop(self) -> None:
        if self.names:
            names, self.names = self.names, []
            self._admin([f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in names])


async def _nats_call(url: str, action) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=3, max_reconnect_attempts=0)
    try:
        await action(nc)
    finally:
        await nc.close()


def nats_reachable(url: str) -> str | None:
    """None when a NATS server with JetStream answers at ``url``, else why not."""
    async def check(nc) -> None:
        await nc.jetstream().account_info()

    try:
        asyncio.run(_nats_call(url, check))
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable
        return f"{type(exc).__name__}: {exc}"
    return None


def drop_stream(url: str, namespace: str) -> None:
    from common.bus import Names

    async def delete(nc) -> None:
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream(Names(namespace).stream)

    with contextlib.suppress(Exception):
        asyncio.run(_nats_call(url, delete))


# ── the stack ────────────────────────────────────────────────────────────────────────────────────


def gateway_rate_limits() -> str:
    from gateway.settings import DEFAULT_RATE_LIMITS

    limits = {name: list(value) for name, value in DEFAULT_RATE_LIMITS.items()}
    limits["order-ip"] = [ORDER_LIMIT, limits["order-ip"][1]]
    return json.dumps(limits)


@dataclass
class Stack:
    transport: str
    folder: Path
    procs: Processes
    dbs: Databases
    urls: dict[str, str]
    namespace: str = ""
    nats_url: str = ""

    @property
    def gateway(self) -> str:
        return self.urls["gateway"]

    def stop(self) -> None:
        self.procs.stop_all()
        self.dbs.drop()
        if self.namespace:
            drop_stream(self.nats_url, self.namespace)
            self.namespace = ""


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_"))
           and k not in ("JWT_PUBLIC_KEY", "SERVICE_TOKEN")}
    env.update(LOG_LEVEL="WARNING", LOG_FORMAT="text", ENVIRONMENT="development", PYTHONDONTWRITEBYTECODE="1")
    return env


def start_stack(args: argparse.Namespace, python: str, tmp: Path, transport: str) -> Stack:
    """The four apps, in ``tmp/<transport>`` (their working directory: the repository's ``.env`` and
    ``var/`` are neither read nor written), wired to each other on free ports."""
    folder = tmp / transport
    folder.mkdir()
    procs = Processes()
    dbs = Databases(args.backend, folder, args.postgres_dsn)
    ports: dict[str, int] = {}
    while len(set(ports.values())) < len(APPS):
        ports = {app: free_port() for app in APPS}
    urls = {app: f"http://127.0.0.1:{port}" for app, port in ports.items()}
    stack = Stack(transport, folder, procs, dbs, urls)
    env = base_env()
    if transport == "nats":
        stack.namespace, stack.nats_url = f"bench{uuid.uuid4().hex[:8]}", args.nats_url
        env.update(EVENT_BUS_URL=args.nats_url, EVENT_NAMESPACE=stack.namespace)
    per_app = {
        "notify": {"NOTIFY_DATABASE_URL": dbs.urls["notify"]},
        "catalog": {"CATALOG_DATABASE_URL": dbs.urls["catalog"], "CATALOG_NOTIFY_URL": urls["notify"],
                    "CATALOG_PUBLIC_BASE_URL": urls["gateway"]},
        "orders": {"ORDERS_DATABASE_URL": dbs.urls["orders"], "ORDERS_CATALOG_URL": urls["catalog"],
                   "ORDERS_NOTIFY_URL": urls["notify"], "ORDERS_PUBLIC_BASE_URL": urls["gateway"]},
        "gateway": {"GATEWAY_DATABASE_URL": dbs.urls["gateway"], "GATEWAY_CATALOG_URL": urls["catalog"],
                    "GATEWAY_ORDERS_URL": urls["orders"], "GATEWAY_NOTIFY_URL": urls["notify"],
                    "GATEWAY_RATE_LIMITS": gateway_rate_limits()},
    }
    module = {"notify": "services.notify", "catalog": "services.catalog", "orders": "services.orders",
              "gateway": "gateway"}
    extra = dict(item.split("=", 1) for item in args.env)
    prefixes = {app: app.upper() + "_" for app in APPS}
    shared = {k: v for k, v in extra.items() if not k.startswith(tuple(prefixes.values()))}
    try:
        for app in APPS:
            own = {k: v for k, v in extra.items() if k.startswith(prefixes[app])}
            procs.start(app, [python, "-m", module[app], "serve", "--host", "127.0.0.1", "--port", str(ports[app])],
                        {**env, **per_app[app], **shared, **own}, folder / f"{app}.log")
        # The gateway's readiness asks every service's.
        wait_ready(procs, f"{urls['gateway']}/readyz", timeout=args.start_timeout)
    except BaseException:
        stack.stop()
        raise
    return stack


def expect(resp, status: int, what: str) -> dict:
    if resp.status_code != status:
        raise BenchError(f"{what}: {resp.status_code} {resp.text[:500]}")
    return resp.json()


def set_up_grower(gateway: str) -> tuple[str, int]:
    """A grower, their shop and one variety, all through the gateway. Returns (access token, variant id)."""
    import httpx

    with httpx.Client(base_url=gateway, timeout=15) as gw:
        expect(gw.post("/api/v1/auth/register", json=GROWER), 201, "register the grower")
        tokens = expect(gw.post("/api/v1/auth/token", json={"login": GROWER["phone"], "password": PASSWORD}),
                        200, "sign in")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        expect(gw.post("/api/v1/shops", json=SHOP, headers=headers), 201, "open the shop")
        product = expect(gw.post("/api/v1/products", json=PRODUCT, headers=headers), 201, "add the variety")
    return tokens["access_token"], product["variants"][0]["id"]


# ── the grower's live stream ─────────────────────────────────────────────────────────────────────


@dataclass
class Arrival:
    at: float  # time.monotonic() when the event's bytes were read
    notification_id: int
    created_at: float  # notify's created_at of the inbox row, as time.monotonic()


class StreamListener(threading.Thread):
    """Reads the grower's server-sent events in a thread of its own (a blocking socket, so the
    arrival time does not wait for the load generator's event loop) and notes when each order's
    ``order.placed`` notification arrived, by order code."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(name="sse-listener", daemon=True)
        self.url, self.token = url, token
        self.arrivals: dict[str, Arrival] = {}
        self.duplicates: list[str] = []
        self.others = 0
        self.keepalives = 0
        self.ready = threading.Event()
        self.error: str | None = None
        self._socket: socket.socket | None = None
        self._stopping = False

    def run(self) -> None:
        import httpx

        try:
            with httpx.Client(timeout=httpx.Timeout(10.0, read=120.0)) as client, \
                    client.stream("GET", self.url, headers={"Authorization": f"Bearer {self.token}",
                                                            "Accept": "text/event-stream"}) as resp:
                if resp.status_code != 200:
                    resp.read()
                    self.error = f"stream answered {resp.status_code}: {resp.text[:300]}"
                    return
                stream = resp.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                data: list[str] = []
                first_at = 0.0
                for line in resp.iter_lines():
                    now = time.monotonic()
                    if line.startswith("retry:"):  # sent once the stream is subscribed: from here on, nothing is missed
                        self.ready.set()
                    elif line.startswith(": keep-alive"):
                        self.keepalives += 1
                    elif line.startswith("data:"):
                        if not data:
                            first_at = now
                        data.append(line[5:].lstrip())
                    elif line == "" and data:
                        self._dispatch("\n".join(data), first_at)
                        data = []
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            if not self._stopping:
                self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if not self._stopping and self.error is None:
                self.error = "the stream ended"
            self.ready.set()

    def _dispatch(self, payload: str, at: float) -> None:
        note = json.loads(payload)
        if note.get("type") != "order.placed":
            self.others += 1
            return
        code = note["data"]["code"]
        if code in self.arrivals:
            self.duplicates.append(code)
            return
        created = dt.datetime.fromisoformat(note["created_at"]).timestamp() - WALL_OFFSET
        self.arrivals[code] = Arrival(at, note["id"], created)

    def stop(self) -> None:
        """End the stream from the client's side (the server then lets go of it at once)."""
        self._stopping = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self.join(timeout=5)


# ── placing orders ───────────────────────────────────────────────────────────────────────────────


@dataclass
class Placed:
    index: int
    sent: float = 0.0  # time.monotonic() just before the POST
    replied: float = 0.0  # … when its reply was read
    status: int = 0
    code: str = ""
    error: str = ""
    created_at: float = 0.0  # the order's created_at (set by orders once the catalog reserved), as time.monotonic()


def order_body(variant_id: int, index: int) -> bytes:
    return json.dumps({
        "lines": [{"variant_id": variant_id, "quantity": 1}],
        "contact": {"name": f"Khách {index + 1}", "phone": CONTACT_PHONE},
        "address": ADDRESS, "payment_method": "cod", "delivery_method": "pickup", "consent": True,
    }, ensure_ascii=False).encode()


async def place(client, variant_id: int, placed: Placed) -> None:
    import httpx

    body = order_body(variant_id, placed.index)
    headers = {"Idempotency-Key": uuid.uuid4().hex, "Content-Type": "application/json"}
    placed.sent = time.monotonic()
    try:
        resp = await client.post("/api/v1/orders", content=body, headers=headers)
    except httpx.HTTPError as exc:
        placed.replied, placed.error = time.monotonic(), f"{type(exc).__name__}"
        return
    placed.replied, placed.status = time.monotonic(), resp.status_code
    if resp.status_code == 201:
        order = resp.json()
        placed.code = order["code"]
        placed.created_at = dt.datetime.fromisoformat(order["created_at"]).timestamp() - WALL_OFFSET
    else:
        try:
            problem = resp.json()
            placed.error = f"{resp.status_code} {problem.get('type', '').rsplit('/', 1)[-1] or problem.get('title')}"
        except ValueError:
            placed.error = f"{resp.status_code}"


@dataclass
class Phase:
    transport: str
    mode: str
    orders: int
    rate: float | None = None  # steady: orders per second asked for
    concurrency: int | None = None  # burst: guests placing at once
    placed: list[Placed] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0  # the last reply
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process during the phase
    other_cores: float = 0.0


async def progress(phase: Phase, listener: StreamListener, label: str) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        done = [p for p in phase.placed if p.replied]
        ok = [p for p in done if p.code]
        seen = sum(1 for p in ok if p.code in listener.arrivals)
        print(f"  {label}: {len(done)}/{phase.orders} placed ({len(done) - len(ok)} failed), "
              f"{seen} on the stream, {sum(1 for p in phase.placed if p.sent and not p.replied)} in flight",
              flush=True)


async def run_phase(phase: Phase, gateway: str, variant_id: int, listener: StreamListener, settle: float,
                    label: str) -> None:
    import httpx

    limits = httpx.Limits(max_connections=max(phase.concurrency or 0, 64), max_keepalive_connections=64)
    phase.placed = [Placed(i) for i in range(phase.orders)]
    async with httpx.AsyncClient(base_url=gateway, timeout=30, limits=limits) as client:
        reporter = asyncio.create_task(progress(phase, listener, label))
        try:
            phase.started = time.monotonic()
            if phase.mode == "steady":
                tasks = []
                for placed in phase.placed:
                    delay = phase.started + placed.index / phase.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(place(client, variant_id, placed)))
                await asyncio.gather(*tasks)
            else:
                queue = iter(phase.placed)

                async def guest() -> None:
                    for placed in queue:
                        await place(client, variant_id, placed)

                await asyncio.gather(*(guest() for _ in range(phase.concurrency)))
            phase.ended = max(p.replied for p in phase.placed)
            await wait_seen(listener, [p.code for p in phase.placed if p.code], settle)
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter


async def wait_seen(listener: StreamListener, codes: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(code in listener.arrivals for code in codes):
            return True
        if listener.error:
            raise BenchError(f"the grower's stream broke: {listener.error}")
        await asyncio.sleep(0.02)
    return all(code in listener.arrivals for code in codes)


async def warm_up(gateway: str, variant_id: int, listener: StreamListener, count: int, timeout: float) -> None:
    """A few orders one at a time, unmeasured, until their events arrive: every connection is open,
    every code path has run once, and the consumer (NATS) is subscribed."""
    import httpx

    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        placed = [Placed(-1 - i) for i in range(count)]
        for p in placed:
            await place(client, variant_id, p)
            if not p.code:
                raise BenchError(f"a warm-up order was refused: {p.error}")
        if not await wait_seen(listener, [p.code for p in placed], timeout):
            missing = sum(1 for p in placed if p.code not in listener.arrivals)
            raise BenchError(f"{missing} of {count} warm-up orders never reached the grower's stream "
                             f"within {timeout:.0f} s")


# ── figures ──────────────────────────────────────────────────────────────────────────────────────


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 50), "p95": pct(values, 95), "p99": pct(values, 99),
            "max": max(values) if values else math.nan, "mean": statistics.fmean(values) if values else math.nan}


def timeline(phase: Phase, placed: Placed, arrival: Arrival | None) -> list[float | None]:
    moments = (placed.sent, placed.replied, placed.created_at,
               arrival.created_at if arrival else None, arrival.at if arrival else None)
    return [None if t is None else round((t - phase.started) * 1000.0, 3) for t in moments]


def figures(phase: Phase, listener: StreamListener) -> dict:
    ok = [p for p in phase.placed if p.code]
    arrived = [(p, listener.arrivals[p.code]) for p in ok if p.code in listener.arrivals]
    errors: dict[str, int] = {}
    for p in phase.placed:
        if not p.code:
            errors[p.error or str(p.status)] = errors.get(p.error or str(p.status), 0) + 1
    codes = {p.code for p in ok}
    elapsed = max(phase.ended - phase.started, 1e-9)
    ms = 1000.0
    return {
        "transport": phase.transport, "mode": phase.mode, "orders": phase.orders, "rate": phase.rate,
        "concurrency": phase.concurrency, "placed": len(ok), "errors": errors,
        "lost": len(ok) - len(arrived), "duplicates": sum(1 for c in listener.duplicates if c in codes),
        "achieved_rate": len(phase.placed) / elapsed,
        "to_201_ms": summary([(p.replied - p.sent) * ms for p in ok]),
        "to_stream_ms": summary([(a.at - p.sent) * ms for p, a in arrived]),
        "to_order_built_ms": summary([(p.created_at - p.sent) * ms for p, _ in arrived]),
        "order_to_inbox_row_ms": summary([(a.created_at - p.created_at) * ms for p, a in arrived]),
        "row_to_stream_ms": summary([(a.at - a.created_at) * ms for _, a in arrived]),
        "after_201_ms": summary([(a.at - p.replied) * ms for p, a in arrived]),
        "before_201": sum(1 for p, a in arrived if a.at < p.replied),
        "cpu_ms_per_order": {name: sec * ms / max(len(phase.placed), 1) for name, sec in phase.cpu.items()},
        "other_cores": phase.other_cores,
        "latencies_ms": [round((a.at - p.sent) * ms, 3) for p, a in arrived],
        # Each order's timeline, ms from the phase's start: POST sent, 201 read, order built (orders'
        # created_at), inbox row made (notify's created_at), event read from the stream (None: lost).
        "timeline_ms": [timeline(phase, p, listener.arrivals.get(p.code)) for p in ok],
    }


def describe(fig: dict) -> str:
    if fig["mode"] == "steady":
        return f"steady {fig['rate']:g}/s"
    return f"burst ×{fig['concurrency']}"


def print_table(results: list[dict]) -> None:
    print()
    print("| transport | load | orders | orders/s | to 201 p50 / p95 (ms) | to stream p50 | p95 | p99 | max (ms) "
          "| lost | dup. | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in results:
        s, r = f["to_stream_ms"], f["to_201_ms"]
        print(f"| {f['transport']} | {describe(f)} | {f['placed']} | {f['achieved_rate']:.1f} | "
              f"{r['p50']:.1f} / {r['p95']:.1f} | {s['p50']:.1f} | {s['p95']:.1f} | {s['p99']:.1f} | {s['max']:.1f} | "
              f"{f['lost']} | {f['duplicates']} | {sum(f['errors'].values())} |")
    print()
    print("Where the time goes (p50 / p95, ms), by the servers' own clocks (one machine): POST sent → order built")
    print("(gateway, orders, the catalog's reservation) → inbox row made by notify (orders' commit, outbox relay,")
    print("transport, notify's handler) → event read from the stream (notify's commit, the stream's wake-up and")
    print("query, the gateway). 'after 201': the event's arrival minus the POST's reply (negative: the event came")
    print("first).")
    print()
    print("| transport | load | → order built | → inbox row | → on the stream | after 201 | event before 201 "
          "| CPU ms per order | other cores |")
    print("|---|---|---:|---:|---:|---:|---:|---|---:|")
    for f in results:
        cpu = ", ".join(f"{n} {v:.1f}" for n, v in f["cpu_ms_per_order"].items())
        cells = " | ".join(f"{f[k]['p50']:.1f} / {f[k]['p95']:.1f}" for k in
                           ("to_order_built_ms", "order_to_inbox_row_ms", "row_to_stream_ms", "after_201_ms"))
        print(f"| {f['transport']} | {describe(f)} | {cells} | {f['before_201']} of {f['placed']} | {cpu} "
              f"| {f['other_cores']:.2f} |")
    print()


def verdicts(results: list[dict], max_other_cores: float) -> bool:
    """Print the verdict per phase; True when every one met the target and lost nothing."""
    good = True
    for f in results:
        p95 = f["to_stream_ms"]["p95"]
        met = p95 <= TARGET_P95_MS and f["lost"] == 0 and f["placed"] > 0
        good &= met
        notes = []
        if f["lost"]:
            notes.append(f"{f['lost']} LOST")
        if f["errors"]:
            notes.append("refused: " + ", ".join(f"{k} ×{v}" for k, v in f["errors"].items()))
        if f["other_cores"] > max_other_cores:
            notes.append(f"other processes kept {f['other_cores']:.2f} cores busy: disturbed")
        print(f"{f['transport']:<5} {describe(f):<14} p95 {p95:7.1f} ms (target ≤ {TARGET_P95_MS:.0f} ms), "
              f"lost {f['lost']}: {'met' if met else 'NOT met'}" + (f"  ({'; '.join(notes)})" if notes else ""))
    return good


# ── main ─────────────────────────────────────────────────────────────────────────────────────────


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--transport", choices=("http", "nats", "both"), default="both",
                   help="http: HTTP push from the outbox to notify (the embedded default); nats: NATS JetStream")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite",
                   help="the apps' databases: SQLite files in the temporary directory, or PostgreSQL databases "
                        "made for the run and dropped after it")
    p.add_argument("--mode", choices=("steady", "burst", "both"), default="both",
                   help="steady: --orders at --rate per second; burst: --orders by --concurrency guests at once")
    p.add_argument("--orders", "-n", type=int, default=200, help="measured orders per transport and mode")
    p.add_argument("--rate", "-r", type=float, default=5.0, help="orders per second in the steady mode")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="guests placing orders at once in the burst mode")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured orders first, one at a time")
    p.add_argument("--settle", type=float, default=15.0,
                   help="seconds to wait after the last reply for events still on their way; what has not "
                        "arrived by then counts as lost")
    p.add_argument("--nats-url", default=NATS_URL, help="NATS server with JetStream (transport nats)")
    p.add_argument("--postgres-dsn", default=PG_ADMIN_DSN,
                   help="PostgreSQL server to make the databases on (backend postgres; $TEST_POSTGRES_DSN)")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the apps, e.g. ORDERS_RELAY_POLL_INTERVAL=0.5 (an app's prefix "
                        "sends it to that app only; repeatable)")
    p.add_argument("--max-other-cores", type=float, default=0.3,
                   help="a phase during which other processes kept more cores than this busy is marked disturbed")
    p.add_argument("--wait-quiet", type=float, default=30.0, metavar="SECONDS",
                   help="before each phase, wait up to this long for other processes to keep at most "
                        "--max-other-cores busy (0: do not wait)")
    p.add_argument("--start-timeout", type=float, default=90.0, help="seconds for the four apps to be ready")
    p.add_argument("--keep", action="store_true",
                   help="keep the temporary directory (SQLite databases, the apps' logs); PostgreSQL databases "
                        "and the NATS stream are removed all the same")
    p.add_argument("--json", metavar="FILE",
                   help="also write every figure as JSON, with each order's timeline (sent, 201, order built, "
                        "inbox row, on the stream)")
    args = p.parse_args(argv)
    if args.orders < 1 or args.rate <= 0 or args.concurrency < 1 or args.warmup < 1 or args.settle <= 0:
        p.error("--orders, --concurrency and --warmup must be ≥ 1; --rate and --settle > 0")
    for item in args.env:
        if "=" not in item:
            p.error(f"--env wants NAME=VALUE, not {item!r}")
    return args


def wait_quiet(args: argparse.Namespace, procs: Processes, label: str) -> float:
    """Wait (up to ``--wait-quiet`` seconds) until other processes keep at most ``--max-other-cores``
    busy over a 2 s sample, while the bench sends nothing. Returns the last sample, in cores."""
    deadline = time.monotonic() + args.wait_quiet
    while True:
        ours_before = sum(cpu_seconds(c.proc.pid) for c in procs.children) + own_cpu_seconds()
        before, started = machine_busy_seconds(), time.monotonic()
        time.sleep(2.0)
        ours = sum(cpu_seconds(c.proc.pid) for c in procs.children) + own_cpu_seconds() - ours_before
        cores = max(0.0, machine_busy_seconds() - before - ours) / (time.monotonic() - started)
        if cores <= args.max_other_cores or time.monotonic() >= deadline:
            return cores
        print(f"{label}: waiting, other processes keep {cores:.2f} cores busy", flush=True)
        time.sleep(3.0)


def measure_transport(args: argparse.Namespace, python: str, tmp: Path, transport: str) -> list[dict]:
    started = time.monotonic()
    print(f"[{transport}] starting notify, catalog, orders and the gateway …", flush=True)
    stack = start_stack(args, python, tmp, transport)
    listener = None
    try:
        print(f"[{transport}] ready in {time.monotonic() - started:.1f} s"
              + (f" (NATS namespace {stack.namespace})" if stack.namespace else "")
              + "; registering a grower, a shop and a variety through the gateway", flush=True)
        token, variant_id = set_up_grower(stack.gateway)
        listener = StreamListener(f"{stack.gateway}/api/v1/notifications/stream", token)
        listener.start()
        if not listener.ready.wait(15) or listener.error:
            raise BenchError(f"the grower's stream did not open: {listener.error or 'no reply in 15 s'}")
        print(f"[{transport}] stream open; {args.warmup} warm-up order(s)", flush=True)
        asyncio.run(warm_up(stack.gateway, variant_id, listener, args.warmup, timeout=30))
        modes = ("steady", "burst") if args.mode == "both" else (args.mode,)
        results = []
        for mode in modes:
            phase = Phase(transport, mode, args.orders, rate=args.rate if mode == "steady" else None,
                          concurrency=args.concurrency if mode == "burst" else None)
            label = f"[{transport}] {describe({'mode': mode, 'rate': args.rate, 'concurrency': args.concurrency})}"
            if args.wait_quiet > 0:
                wait_quiet(args, stack.procs, label)
            print(f"{label}: {args.orders} orders …", flush=True)
            before = {c.name: cpu_seconds(c.proc.pid) for c in stack.procs.children}
            before["bench"] = own_cpu_seconds()
            busy_before, t0 = machine_busy_seconds(), time.monotonic()
            asyncio.run(run_phase(phase, stack.gateway, variant_id, listener, args.settle, label))
            busy, elapsed = machine_busy_seconds() - busy_before, time.monotonic() - t0
            after = {c.name: cpu_seconds(c.proc.pid) for c in stack.procs.children}
            after["bench"] = own_cpu_seconds()
            phase.cpu = {name: after[name] - before[name] for name in before}
            phase.other_cores = max(0.0, (busy - sum(phase.cpu.values())) / elapsed) if busy else 0.0
            stack.procs.check_alive()
            fig = figures(phase, listener)
            s = fig["to_stream_ms"]
            print(f"{label}: {fig['placed']} placed, {fig['lost']} lost; to stream p50 {s['p50']:.1f} ms, "
                  f"p95 {s['p95']:.1f} ms, max {s['max']:.1f} ms", flush=True)
            results.append(fig)
        return results
    finally:
        if listener is not None:
            listener.stop()
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ensure_venv(__file__, "httpx", "services.notify", target="bench-events")
    python = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
    transports = ("http", "nats") if args.transport == "both" else (args.transport,)
    if "nats" in transports and (why := nats_reachable(args.nats_url)):
        sys.stderr.write(f"bench/events.py: NATS with JetStream is not usable at {args.nats_url} ({why}).\n"
                         "  Start nats-server with -js, or run --transport http.\n")
        return 2

    # A SIGTERM (e.g. from CI's timeout) unwinds like Ctrl-C, so the children are stopped.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)

    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, REPO),
                                                 os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    info = machine()
    date = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"Chợ Vườn events bench — {date}")
    print(f"  machine : {info['cpus']} CPUs, {info['cpu_model']}, {info['memory']}, {info['kernel']}, "
          f"Python {info['python']}; load average before the run {info['load_before']}")
    print(f"  source  : commit {info['source']}")
    print(f"  command : {command}")
    print(f"  apps    : notify, catalog, orders, gateway, 1 uvicorn process each, LOG_LEVEL=WARNING, "
          f"{'SQLite files' if args.backend == 'sqlite' else 'PostgreSQL databases'}; relays at their default "
          "settings" + "".join(f", {item}" for item in args.env))
    print(f"  gateway : order-ip rate limit raised to {ORDER_LIMIT} a minute (default 20: every order "
          "comes from 127.0.0.1)")
    print(f"  load    : {args.warmup} warm-up orders, then per transport "
          + " and ".join(m for m in (f"{args.orders} orders at {args.rate:g}/s" if args.mode != "burst" else "",
                                     f"{args.orders} orders by {args.concurrency} guests at once"
                                     if args.mode != "steady" else "") if m)
          + "; latency = POST sent → its order.placed event read on GET /api/v1/notifications/stream "
          "(through the gateway)")
    print(flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="bench-events-"))
    results: list[dict] = []
    try:
        for transport in transports:
            results += measure_transport(args, python, tmp, transport)
        print_table(results)
        verdicts(results, args.max_other_cores)
        info["load_after"] = load_average()
        print(f"(load average after the run {info['load_after']})")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "date": date, "command": command, "machine": info, "backend": args.backend,
                "target_p95_ms": TARGET_P95_MS, "warmup": args.warmup, "settle_s": args.settle,
                "env": args.env, "results": results,
            }, indent=2, ensure_ascii=False) + "\n")
        # The verdict is printed; only lost events (a correctness failure) make the exit status non-zero.
        return 1 if any(f["lost"] for f in results) else 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started …", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench/events.py: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"(kept {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

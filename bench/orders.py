"""How many orders a second can the marketplace place, and does it ever oversell?

Per backend (SQLite, PostgreSQL) the four apps and a grower's shop; ``--concurrency`` buyers place guest
orders on (a) many variants and (b) one, each beside a raw-SQL baseline of the catalog's conditional
update, then sell one variant out: orders/s, p50/p99, orders/s ÷ updates/s, CPU per order, the books.
Target on PostgreSQL: (a) orders/s ÷ updates/s ≥ 0.085; zero oversell. ``--baseline REV``: the same beside
a stack of that revision's source, in turn. ``--tracing``: what tracing costs instead (rounds of the apps
with tracing off, then on, exporting to a receiver in this process).

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if __name__ == "__main__":  # the repository first, or bench/gateway.py shadows `gateway`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import harness as h  # noqa: E402

TARGET_RATIO = 0.085  # (a): gateway orders/s ÷ raw-SQL updates/s, on PostgreSQL
RETRIES = 5  # a buyer asks again this many times (same Idempotency-Key) after no reply, a 503 or a 409 in flight
GROWER_PHONE = "0912345678"
BENCH_ORDER_LIMIT = 100_000_000  # the gateway's order-creation limit per address (a minute) while the bench runs
STOCK, SELLOUT_STOCK = 1_000_000, 300  # of every measured variant; of the one sold out at the end
SHOP = h.shop_body(GROWER_PHONE, name="Vườn Súng Đo Tải", description="Súng và sen Đồng Tháp", min_order_value=0,
                  delivery={"pickup": True, "flat_fee": 30000, "fee_by_province": {"92": 15000}})
ADDRESSES = [
    {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
    {"province_code": "92", "ward_code": "31135", "street": "1 Hòa Bình"},
]


@dataclass
class Shop:
    many: list[int]  # (a): variants drawn at random
    one: int  # (b): every order on this one
    sellout: int  # the sell-out check
    raw_many: list[int]  # the raw-SQL baseline's own variants
    raw_one: int
    initial: dict[int, int]  # variant id → stock it was made with


async def seed_shop(gateway_url: str, variants: int) -> Shop:
    """A grower, a shop and its varieties, made through the gateway as a grower would."""
    import httpx

    per_product = 20  # the most variants a product may have
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as gw:
        headers, _ = await h.open_shop(gw, GROWER_PHONE, SHOP)

        async def product(name: str, count: int, each: int = STOCK) -> list[int]:
            body = {"name": name, "description": "Củ giống khỏe, ship toàn quốc", "category": "water_lily",
                    "status": "active", "variants": [
                        {"label": f"Củ giống {i + 1}", "retail_price": 45000 + 1000 * (i % 7), "stock": each,
                         "min_order_quantity": 1,
                         "wholesale_tiers": [{"min_quantity": 10, "unit_price": 38000}]} for i in range(count)]}
            added = h.expect(await gw.post("/api/v1/products", json=body, headers=headers), 201, "adding a variety")
            return [v["id"] for v in added["variants"]]

        async def spread(prefix: str, n: int) -> list[int]:
            ids: list[int] = []
            for p in range(0, n, per_product):
                ids += await product(f"{prefix} {p // per_product + 1}", min(per_product, n - p))
            return ids

        many = await spread("Súng Thái", variants)
        (one,) = await product("Sen Quan Âm", 1)
        (sellout,) = await product("Súng Nhật Bản hiếm", 1, SELLOUT_STOCK)
        raw_many = await spread("Súng lai (SQL)", variants)
        (raw_one,) = await product("Sen bách diệp (SQL)", 1)
    initial = {v: STOCK for v in [*many, one, *raw_many, raw_one]} | {sellout: SELLOUT_STOCK}
    return Shop(many, one, sellout, raw_many, raw_one, initial)


@dataclass
class Run:
    scenario: str
    seconds: float = 0.0
    ok: int = 0  # measured 201s (or successful updates for the baseline)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # transport errors (each attempt)
    retried: Counter = field(default_factory=Counter)  # 409 in flight / 503, asked again with the same key
    unresolved: int = 0  # no answer even after the retries: the ledger cannot know this order's fate
    out_of_stock: int = 0
    samples: list[str] = field(default_factory=list)  # a few replies other than 201 and out of stock
    cpu_s: dict[str, float] = field(default_factory=dict)
    other_cores: float = 0.0
    events_behind: int = 0  # the orders outbox's events not yet handed to notify as the run ended

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        return h.pct(self.latencies_ms, q)


def order_body(rng: random.Random, variant_id: int, quantity: int) -> dict:
    return h.guest_order(variant_id, quantity, name=rng.choice(h.BUYER_NAMES), phone=h.mobile(rng),
                         address=rng.choice(ADDRESSES))


async def buyers(gateway_url: str, variants: list[int], concurrency: int, seconds: float, label: str,
                 ledger: dict, quantities: tuple[int, int] = (1, 3), stop_when_sold_out: bool = False) -> Run:
    """``concurrency`` buyers placing orders for ``seconds`` (closed loop: each sends its next order
    when the last is answered), each over a connection of its own. Every 201 is written in the ledger."""
    run = Run(label)
    started = time.monotonic()
    stop_at = started + seconds
    sold_out = asyncio.Event()

    async def buyer(n: int) -> None:
        rng = random.Random(f"{label}-{n}-{time.time_ns()}")
        connection = h.Connection(gateway_url)
        try:
            while time.monotonic() < stop_at and not sold_out.is_set():
                variant = rng.choice(variants)
                quantity = rng.randint(*quantities)
                body, key = order_body(rng, variant, quantity), uuid.uuid4().hex
                t0 = time.perf_counter()
                # As a careful client does: a lost reply, a 503 or a 409 "in flight" is asked again with
                # the same key and body, so an order placed once is never placed twice nor left unknown.
                for attempt in range(RETRIES + 1):
                    try:
                        answer = await connection.request("POST", "/api/v1/orders", json=body,
                                                          headers={"Idempotency-Key": key})
                        status, reply = answer.status, answer.json()
                    except h.Connection.ERRORS as exc:
                        run.errors[type(exc).__name__] += 1
                        status, reply = None, {}
                    else:
                        if status not in (409, 503) or reply.get("type", "").endswith("/out-of-stock"):
                            break
                        run.retried[status] += 1
                    await asyncio.sleep(min(2.0, 0.2 * 2 ** attempt))
                elapsed = (time.perf_counter() - t0) * 1000
                if status is None:
                    run.unresolved += 1
                    continue
                run.statuses[status] += 1
                if status == 201:
                    if [(ln["variant_id"], ln["quantity"]) for ln in reply.get("lines", [])] != [(variant, quantity)]:
                        run.errors["201 with other lines"] += 1
                    ledger[variant] += quantity
                    run.ok += 1
                    run.latencies_ms.append(elapsed)
                elif reply.get("type", "").endswith("/out-of-stock"):
                    run.out_of_stock += 1
                    if stop_when_sold_out:
                        sold_out.set()
                elif len(run.samples) < 5:
                    run.samples.append(f"{status} {reply.get('title', '')}: {reply.get('detail', '')}"[:200])
        finally:
            connection.close()

    await asyncio.gather(*(buyer(n) for n in range(concurrency)))
    run.seconds = time.monotonic() - started
    return run


async def raw_sql(url: str, variants: list[int], concurrency: int, seconds: float, label: str, ledger: dict) -> Run:
    """The baseline: each worker, in a transaction of its own as the catalog's, takes stock with the
    conditional update and commits. Same driver, same connection settings (SQLite pragmas, BEGIN
    IMMEDIATE) as the catalog; one connection per worker."""
    from sqlalchemy import text

    from common.db import is_sqlite, make_engine

    engine = make_engine(url, pool_size=concurrency, max_overflow=0,
                         **({} if is_sqlite(url) else {"pool_pre_ping": False}))
    writer = engine.execution_options(sqlite_immediate=True)
    take = text("UPDATE variants SET stock = stock - :q WHERE id = :id AND stock >= :q RETURNING stock")
    run = Run(label)
    try:
        async with writer.connect() as conn:  # open the pool's first connection before the clock starts
            await conn.execute(text("SELECT 1"))
        started = time.monotonic()
        stop_at = started + seconds

        async def worker(n: int) -> None:
            rng = random.Random(f"{label}-{n}-{time.time_ns()}")
            while time.monotonic() < stop_at:
                variant, quantity = rng.choice(variants), rng.randint(1, 3)
                t0 = time.perf_counter()
                try:
                    async with writer.connect() as conn, conn.begin():
                        left = (await conn.execute(take, {"q": quantity, "id": variant})).scalar_one_or_none()
                except Exception as exc:  # noqa: BLE001 - counted and shown; a baseline does not stop
                    run.errors[type(exc).__name__] += 1
                    continue
                run.statuses["updated" if left is not None else "no stock"] += 1
                if left is not None:
                    ledger[variant] += quantity
                    run.ok += 1
                    run.latencies_ms.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
        run.seconds = time.monotonic() - started
    finally:
        await engine.dispose()
    return run


def measured(procs: h.Processes, load) -> Run:
    """Run a load, with the CPU time each app and this process spent, and what other processes took."""
    with h.CpuMeter(procs) as cpu:
        run = asyncio.run(load)
    run.cpu_s, run.other_cores = cpu.used, cpu.other_cores
    procs.check_alive()
    return run


@dataclass
class Check:
    variants: int = 0
    initial: int = 0
    stock: int = 0
    committed: int = 0
    held_with_order: int = 0  # the reconciler commits these
    held_without_order: int = 0  # an attempt that failed half way: the sweeper gives them back after the TTL
    in_orders: int = 0
    told: int = 0
    oversold: int = 0
    problems: list[str] = field(default_factory=list)


async def read_books(urls: dict[str, str]) -> tuple[dict, list, dict, dict]:
    """The catalog's stock and reservation lines, and the orders' reservations and units per variant."""
    from sqlalchemy import text

    from common.db import make_engine

    catalog, orders = make_engine(urls["catalog"]), make_engine(urls["orders"])
    try:
        async with catalog.connect() as conn:
            stock = dict((await conn.execute(text("SELECT id, stock FROM variants"))).all())
            lines = (await conn.execute(text(
                "SELECT r.id, r.status, l.variant_id, l.quantity FROM reservation_lines l "
                "JOIN reservations r ON r.id = l.reservation_id"))).all()
        async with orders.connect() as conn:
            placed = dict((await conn.execute(text(
                "SELECT reservation_id, reservation_state FROM orders WHERE status <> 'cancelled'"))).all())
            in_orders = {v: int(q) for v, q in (await conn.execute(text(
                "SELECT l.variant_id, SUM(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                "WHERE o.status <> 'cancelled' GROUP BY l.variant_id"))).all()}
    finally:
        await catalog.dispose()
        await orders.dispose()
    return stock, lines, placed, in_orders


async def events_behind(urls: dict[str, str]) -> int:
    """The orders' outbox events the relay has not yet handed to notify: at the end of a run, how far
    the growers' notifications trail the orders (work left out of the run's CPU per order, too)."""
    from sqlalchemy import text

    from common.db import make_engine

    orders = make_engine(urls["orders"])
    try:
        async with orders.connect() as conn:
            return int(await conn.scalar(text("SELECT COUNT(*) FROM outbox_events WHERE published_at IS NULL")))
    finally:
        await orders.dispose()


async def settle(urls: dict[str, str], seconds: float) -> None:
    """Wait (up to ``seconds``) until no stored order's reservation is still held: the orders
    reconciler commits one whose commit call failed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _, lines, placed, _ = await read_books(urls)
        if not any(status == "held" and rid in placed for rid, status, _, _ in lines):
            return
        await asyncio.sleep(1.0)


async def check_stock(urls: dict[str, str], initial: dict[int, int], ledger: dict, via_orders: set[int]) -> Check:
    """The books of the variants in ``initial``, at rest after a run.

    Per variant: stock ≥ 0; stock + held + committed = initial (the catalog loses no update); units in
    orders ≤ initial (nothing oversold). For variants sold through orders also: every committed
    reservation belongs to an order (no stock taken for nothing), every order's reservation is held or
    committed (never released under a live order), units in orders = units the orders' reservations
    hold, and = units the buyers were told in 201s. For the baseline's variants: initial − stock =
    units its updates took.
    """
    stock, lines, placed, in_orders = await read_books(urls)
    per = defaultdict(lambda: defaultdict(int))
    for rid, status, variant_id, quantity in lines:
        if variant_id not in initial:
            continue
        if status == "held":
            status = "held_with_order" if rid in placed else "held_without_order"
        elif status == "committed" and rid not in placed:
            per[variant_id]["committed_without_order"] += quantity
        per[variant_id][status] += quantity
    released_under_order = {rid for rid, status, v, _ in lines
                            if v in initial and status == "released" and rid in placed}
    check = Check(variants=len(initial))
    if released_under_order:
        check.problems.append(f"{len(released_under_order)} orders whose reservation was released")
    for v in sorted(initial):
        s, t = stock.get(v), per[v]
        if s is None:
            check.problems.append(f"variant {v} is gone")
            continue
        held = t["held_with_order"] + t["held_without_order"]
        check.initial += initial[v]
        check.stock += s
        check.committed += t["committed"]
        check.held_with_order += t["held_with_order"]
        check.held_without_order += t["held_without_order"]
        if s < 0:
            check.problems.append(f"variant {v}: stock {s} below zero")
        if v in via_orders:
            units, told = in_orders.get(v, 0), ledger.get(v, 0)
            check.in_orders += units
            check.told += told
            check.oversold += max(0, units - initial[v], -s)
            if s + held + t["committed"] != initial[v]:
                check.problems.append(f"variant {v}: stock {s} + held {held} + committed {t['committed']} "
                                      f"≠ initial {initial[v]}")
            if t["committed_without_order"]:
                check.problems.append(f"variant {v}: {t['committed_without_order']} units committed for no order")
            if units != t["committed"] - t["committed_without_order"] + t["held_with_order"]:
                check.problems.append(f"variant {v}: {units} units in orders, their reservations hold "
                                      f"{t['committed'] - t['committed_without_order'] + t['held_with_order']}")
            if told != units:
                check.problems.append(f"variant {v}: buyers were told {told} units (201s), orders hold {units}")
        else:
            check.oversold += max(0, -s)
            if held or t["committed"]:
                check.problems.append(f"variant {v}: a baseline variant has reservations")
            if initial[v] - s != ledger.get(v, 0):
                check.problems.append(f"variant {v}: the updates took {ledger.get(v, 0)} units, "
                                      f"stock fell by {initial[v] - s}")
    return check


@dataclass
class BackendResult:
    backend: str
    stack: str  # "this", or "baseline <commit>"
    version: str
    runs: dict[str, Run]
    check: Check
    sellout: Check
    sellout_run: Run

    @property
    def label(self) -> str:
        return self.backend if self.stack == "this" else f"{self.backend}, {self.stack}"

    def ratio(self, key: str) -> float:
        """Gateway orders/s ÷ raw-SQL updates/s of run ``key`` (a or b)."""
        return h.ratio(self.runs[key].rate, self.runs[f"raw-{key}"].rate)


def run_backend(args: argparse.Namespace, bench: h.Bench, name: str, stack: str,
                source: dict[str, str]) -> BackendResult:
    t0, procs, run_dir = time.monotonic(), bench.procs, bench.tmp / f"{name}-{stack.split()[0]}"
    run_dir.mkdir()
    backend = h.Databases(name, run_dir, args.pg_admin_dsn, prefix="cv_bench_orders")
    bench.cleanups.append(backend.drop)
    print(f"\n== {backend.version}, {stack} ==", flush=True)
    urls = h.start_apps(procs, bench.python, run_dir, backend.urls, env={
        "GATEWAY_RATE_LIMITS": h.rate_limits(order_ip=BENCH_ORDER_LIMIT), **h.env_pairs(args.env), **source})
    shop = asyncio.run(seed_shop(urls["gateway"], args.variants))
    if args.serve:
        print(f"  variants: (a) {shop.many[0]}…{shop.many[-1]}, (b) {shop.one}, sell-out {shop.sellout}")
        procs.serve_forever(urls)
    print(f"  4 apps up and a shop with {len(shop.many) + 2} variants for buyers, {len(shop.raw_many) + 1} for the "
          f"baseline, in {time.monotonic() - t0:.1f} s", flush=True)
    # The ledger: what the buyers were told, units per variant in 201 replies, warm-up included.
    ledger, runs, n, d = defaultdict(int), {}, args.concurrency, args.duration
    if args.warmup > 0:
        asyncio.run(buyers(urls["gateway"], shop.many, n, args.warmup, "warm-up", ledger))
    for key, variants, raw_variants in (("a", shop.many, shop.raw_many), ("b", [shop.one], [shop.raw_one])):
        what = "many variants" if key == "a" else "one variant"
        runs[f"raw-{key}"] = measured(procs, raw_sql(backend.urls["catalog"], raw_variants, n, d,
                                                     f"({key}) raw SQL, {what}", ledger))
        _line(runs[f"raw-{key}"], "updates")
        runs[key] = measured(procs, buyers(urls["gateway"], variants, n, d, f"({key}) gateway, {what}", ledger))
        runs[key].events_behind = asyncio.run(events_behind(backend.urls))
        _line(runs[key], "orders")
    sellout_run = measured(procs, buyers(urls["gateway"], [shop.sellout], n, 60.0, "sell-out", ledger,
                                         quantities=(1, 1), stop_when_sold_out=True))
    # The buyers stopped at the first out-of-stock reply; the rest of the stock, if any (a reservation
    # that had failed and was given back), goes now, one at a time.
    while True:
        one_more = asyncio.run(buyers(urls["gateway"], [shop.sellout], 1, 10.0, "sell-out rest", ledger,
                                      quantities=(1, 1), stop_when_sold_out=True))
        sellout_run.ok += one_more.ok
        sellout_run.out_of_stock += one_more.out_of_stock
        sellout_run.statuses.update(one_more.statuses)
        if one_more.ok == 0:
            break
    asyncio.run(settle(backend.urls, args.settle))
    via_orders = {*shop.many, shop.one}
    check = asyncio.run(check_stock(backend.urls, {v: n for v, n in shop.initial.items() if v != shop.sellout},
                                    ledger, via_orders))
    sellout = asyncio.run(check_stock(backend.urls, {shop.sellout: SELLOUT_STOCK}, ledger, {shop.sellout}))
    if sellout.stock != 0:
        sellout.problems.append(f"{sellout.stock} units left after the buyers were told it was sold out")
    print(f"  sell-out: {SELLOUT_STOCK} in stock, {sellout_run.ok} orders of 1 accepted, "
          f"{sellout_run.out_of_stock} refused out of stock, {sellout.stock} left", flush=True)
    procs.stop_all()
    backend.drop()
    return BackendResult(backend.label, stack, backend.version, runs, check, sellout, sellout_run)


def _line(run: Run, unit: str) -> None:
    failed = sum(c for s, c in run.statuses.items() if s not in (201, "updated")) + sum(run.errors.values())
    per = ", ".join(f"{k} {1000 * v / max(run.ok, 1):.1f}" for k, v in run.cpu_s.items() if v / run.seconds >= 0.01)
    print(f"  {run.scenario:<30} {run.rate:8.1f} {unit}/s  p50 {run.pct(50):7.1f} ms  p99 {run.pct(99):7.1f} ms"
          + (f"  {failed} not ok {dict(run.statuses) | dict(run.errors)}" if failed else "")
          + f"\n  {'':<30} CPU ms per {unit[:-1]}: {per}; other processes (database server, rest of the machine) "
          f"kept {run.other_cores:.2f} cores busy"
          + (f"; {run.events_behind} events not yet handed to notify at its end" if unit == "orders" else ""),
          flush=True)


def report(results: list[BackendResult], args: argparse.Namespace) -> bool:
    print(f"\n{args.concurrency} concurrent buyers (gateway) or workers (raw SQL), {args.duration:g} s each; "
          "latency = request sent → reply read (gateway), BEGIN → COMMIT (raw SQL)\n")
    rows = []
    for r in results:
        for key, what in (("a", f"{args.variants} variants"), ("b", "1 variant")):
            g, raw = r.runs[key], r.runs[f"raw-{key}"]
            not_ok = sum(c for s, c in g.statuses.items() if s != 201) + g.unresolved
            rows.append([r.label, f"({key}) {what}", f"{g.rate:.1f}", f"{g.pct(50):.1f}", f"{g.pct(99):.1f}",
                         f"{raw.rate:.0f}", f"{raw.pct(50):.1f}", f"{raw.pct(99):.1f}", f"{r.ratio(key):.3f}", not_ok])
    print(h.table(["backend", "orders on", "gateway orders/s", "p50 (ms)", "p99 (ms)", "raw SQL updates/s", "p50 (ms)",
                   "p99 (ms)", "orders/s ÷ updates/s", "not 201 (after retries)"], rows, left=2) + "\n")
    ok, rows = True, []
    for r in results:
        c, s = r.check, r.sellout
        problems = c.problems + s.problems
        ok &= not problems
        rows.append([r.label, c.variants, f"{c.initial:,}", f"{c.stock:,}", f"{c.committed:,}",
                     f"{c.held_with_order + s.held_with_order} / {c.held_without_order + s.held_without_order}",
                     f"{c.in_orders:,}", f"{c.told:,}", c.oversold + s.oversold,
                     f"{SELLOUT_STOCK} → {s.in_orders}, {s.stock}",
                     "all hold" if not problems else f"{len(problems)} FAILED"])
    print(h.table(["backend", "variants", "initial units", "in stock", "committed", "held (order / none)", "in orders",
                   "told buyers (201s)", "oversold", "sell-out: stock → sold, left", "checks"], rows))
    for r in results:
        for problem in (r.check.problems + r.sellout.problems)[:20]:
            print(f"  {r.label}: {problem}")
    for r in results:
        for run in (*r.runs.values(), r.sellout_run):
            if run.retried or run.unresolved or run.samples:
                print(f"  {r.label} {run.scenario}: asked again {dict(run.retried)}, transport errors "
                      f"{dict(run.errors)}, unanswered {run.unresolved}" + "".join(f"; {x}" for x in run.samples))
    for r, base in ((r, b) for r in results for b in results if r.stack == "this" != b.stack
                    and r.backend == b.backend):
        behind = {x.stack: f"{x.runs['a'].events_behind}, {x.runs['b'].events_behind}" for x in (r, base)}
        print(f"\nevents not yet handed to notify at the end of (a), (b): this {behind[r.stack]}; "
              f"{base.stack} {behind[base.stack]}")
        print(f"this ÷ {base.stack}, {r.backend}: " + ", ".join(
            f"({k}) orders/s × {h.ratio(r.runs[k].rate, base.runs[k].rate):.2f}, orders/s ÷ updates/s "
            f"{r.ratio(k):.3f} against {base.ratio(k):.3f} (× {h.ratio(r.ratio(k), base.ratio(k)):.2f})" for k in "ab"))
    for r in results:
        if r.backend == "PostgreSQL" and r.stack == "this":
            print(f"\nPostgreSQL (a) orders/s ÷ raw-SQL updates/s {r.ratio('a'):.3f} (target ≥ {TARGET_RATIO}: "
                  f"{'met' if r.ratio('a') >= TARGET_RATIO else 'NOT met'})")
    oversold = sum(r.check.oversold + r.sellout.oversold for r in results)
    print(f"oversold units: {oversold} (target 0: {'met' if oversold == 0 and ok else 'NOT met'})")
    return ok


TRACED_APPS = ("gateway", "orders", "catalog", "notify")


class Sink:
    """An OTLP/HTTP trace receiver that counts requests, bytes and spans (the spans decoded only when
    asked, after the load, so that the bench's own CPU stays out of the way)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with sink.lock:
                    sink.bodies.append(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> int:
        """The spans received since the last call."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        with self.lock:
            bodies, self.bodies = self.bodies, []
        spans = 0
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans += sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        return spans

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Traced:
    mode: str
    round: int
    run: Run
    spans: int = 0

    def cpu_ms(self, app: str | None = None) -> float:
        """CPU ms per order of one app, or of the four."""
        used = self.run.cpu_s.get(app, 0.0) if app else sum(self.run.cpu_s.get(a, 0.0) for a in TRACED_APPS)
        return 1000 * used / self.run.ok if self.run.ok else float("nan")


def traced(args, bench: h.Bench, mode: str, round_: int, sink: Sink) -> Traced:
    run_dir = bench.tmp / f"{mode}-{round_}"
    run_dir.mkdir()
    dbs = h.Databases(args.backend, run_dir, args.pg_admin_dsn, prefix="cv_bench_tracing")
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "1000",
               "OTEL_TRACES_SAMPLER": args.sampler} if mode == "on" else {}
    try:
        urls = h.start_apps(bench.procs, bench.python, run_dir, dbs.urls,
                            env={"GATEWAY_RATE_LIMITS": h.rate_limits(order_ip=BENCH_ORDER_LIMIT), **tracing,
                                 **h.env_pairs(args.env)})
        shop = asyncio.run(seed_shop(urls["gateway"], args.variants))
        ledger = defaultdict(int)
        asyncio.run(buyers(urls["gateway"], shop.many, args.concurrency, args.warmup, "warm-up", ledger))
        time.sleep(1.5)  # the warm-up's events and spans out of the way
        if args.wait_quiet > 0:
            h.wait_quiet(bench.procs, args.wait_quiet, args.max_other_cores, f"round {round_} tracing {mode} ")
        sink.take()
        run = measured(bench.procs, buyers(urls["gateway"], shop.many, args.concurrency, args.duration,
                                           f"round {round_}, tracing {mode}", ledger))
        time.sleep(2.0)  # the batch exporters' last exports of the measured orders
        result = Traced(mode, round_, run, sink.take())
        print(f"  round {round_} tracing {mode:<3}: {run.rate:6.1f} orders/s, p99 {run.pct(99):6.1f} ms, "
              f"apps' CPU {result.cpu_ms():5.2f} ms/order, {result.spans / max(run.ok, 1):.1f} spans/order", flush=True)
        return result
    finally:
        bench.procs.stop_all()
        dbs.drop()


def tracing_report(results: list[Traced], args, bench: h.Bench) -> str:
    rows = [[r.round, r.mode, f"{r.run.rate:.1f}", f"{r.run.pct(99):.1f}",
             " / ".join(f"{r.cpu_ms(a):.2f}" for a in TRACED_APPS), f"{r.cpu_ms():.2f}",
             f"{r.spans / r.run.ok:.1f}" if r.run.ok else "–", f"{r.run.other_cores:.2f}"] for r in results]
    table = h.table(["round", "tracing", "orders/s", "p99 (ms)", "CPU ms/order: " + " / ".join(TRACED_APPS),
                     "apps' CPU ms/order", "spans/order", "other processes (cores)"], rows, left=2)
    pairs = [(next(r for r in results if r.round == n and r.mode == "off"),
              next(r for r in results if r.round == n and r.mode == "on")) for n in range(1, args.rounds + 1)]

    def ratio(f) -> float:
        return statistics.median(f(on) / f(off) for off, on in pairs)

    disturbed = sum(r.run.other_cores > args.max_other_cores for r in results)
    warning = (f"\n**Disturbed**: other processes kept more than {args.max_other_cores:g} cores busy during "
               f"{disturbed} of the {len(results)} runs (last column): run again on a quiet machine.\n"
               if disturbed else "")
    i = bench.info
    return f"""## Tracing (bench/orders.py)

What tracing costs when it is on (decision 0026): guest orders through the gateway by the orders bench's
buyers, the four apps started twice per round on fresh {args.backend} databases, tracing off (the default:
the SDK is not imported) and on (OTLP/HTTP to a receiver in the bench process; sampler `{args.sampler}`, the
batch exporter every second), {args.concurrency} buyers for {args.duration:g} s each after {args.warmup:g} s of
warm-up. Off and on alternate, so a drift of the machine's speed falls on both.

Date: {h.now()}  
Machine: {i['cpus']} CPUs, {i['cpu_model']}, {i['memory']}; load average before the run {i['load_before']}  
Source: commit {i['source']}  
Command: `{bench.command}`

{table}
{warning}
Tracing on ÷ off, medians of the {len(pairs)} rounds: **orders/s × {ratio(lambda r: r.run.rate):.2f}**, **the
apps' CPU per order × {ratio(lambda r: r.cpu_ms()):.2f}** (""" + ", ".join(
        f"{a} × {ratio(lambda r, a=a: r.cpu_ms(a)):.2f}" for a in TRACED_APPS) + f"""), \
p99 × {ratio(lambda r: r.run.pct(99)):.2f}.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__, env="--env", pg="--pg-admin-dsn", serve=True, quiet=0.3)
    p.set_defaults(pg_admin_dsn=os.environ.get("BENCH_POSTGRES_DSN", h.PG_ADMIN_DSN))
    p.add_argument("--backend", choices=("sqlite", "postgres", "both"), help="default: both; --tracing: sqlite")
    p.add_argument("--duration", "-d", type=float, default=15.0, help="seconds measured per run")
    p.add_argument("--concurrency", "-c", type=int, help="concurrent buyers (and raw-SQL workers); default 50, "
                   "--tracing 16")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured orders first (0: none)")
    p.add_argument("--variants", type=int, help="variants the orders of (a) are spread over; default 200, "
                   "--tracing 50")
    p.add_argument("--settle", type=float, default=15.0, help="seconds for the reconciler before the books are read")
    p.add_argument("--baseline", metavar="REV", help="also a stack of this git revision's source, after this one's "
                   "on each backend")
    p.add_argument("--tracing", action="store_true", help="what tracing costs: rounds of the apps off, then on")
    p.add_argument("--rounds", type=int, default=2, help="--tracing: rounds of (off, on)")
    p.add_argument("--sampler", default="parentbased_always_on", help="--tracing: OTEL_TRACES_SAMPLER when on "
                   "(OTEL_TRACES_SAMPLER_ARG through --env)")
    p.add_argument("--write-docs", action="store_true", help="--tracing: rewrite its section of docs/performance.md")
    args = p.parse_args(argv)
    args.backend = args.backend or ("sqlite" if args.tracing else "both")
    args.concurrency = args.concurrency or (16 if args.tracing else 50)
    args.variants = args.variants or (50 if args.tracing else 200)
    if args.concurrency < 1 or args.duration <= 0 or args.variants < 1 or args.rounds < 1:
        p.error("--concurrency, --variants and --rounds must be ≥ 1, --duration > 0")
    if args.tracing and (args.backend == "both" or args.baseline):
        p.error("--tracing runs on one --backend, without --baseline")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def tracing(bench: h.Bench) -> int:
        bench.header("tracing bench",
                     load=f"{args.concurrency} buyers, {args.rounds} rounds of (off, on) on {args.backend}")
        sink = Sink()
        bench.cleanups.append(sink.close)
        results = [traced(args, bench, mode, n, sink) for n in range(1, args.rounds + 1) for mode in ("off", "on")]
        text = tracing_report(results, args, bench)
        print("\n" + text)
        if args.write_docs:
            h.write_section("## Tracing", text)
        bench.write_json(args, runs=results)
        return 0

    if args.tracing:
        return h.run(__file__, tracing, needs=("services.orders", "opentelemetry.proto"), target="bench-tracing",
                     keep=args.keep)

    def body(bench: h.Bench) -> int:
        stacks = h.stacks(bench.tmp, args.baseline)
        bench.header("orders bench", load=f"{args.concurrency} buyers, a keep-alive connection each, guest orders "
                     f"of 1–3 units, closed loop; {args.warmup:g} s warm-up, then {args.duration:g} s per run",
                     apps=f"one uvicorn process each, events by HTTP push, order-ip limit {BENCH_ORDER_LIMIT:,}",
                     baseline=f"{list(stacks)[-1]} ({args.baseline}), after this source on each backend"
                     if args.baseline else None)
        names = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
        results = [run_backend(args, bench, name, *stack) for name in names for stack in stacks.items()]
        ok = report(results, args)
        bench.write_json(args, results=results)
        return 0 if ok else 3

    return h.run(__file__, body, needs=("services.orders",), target="bench-orders", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

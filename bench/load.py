"""A realistic load through the gateway, and the memory the four apps take meanwhile.

The production shape (PostgreSQL, NATS JetStream), seeded through the API, under weighted traffic
(browse 10 : search 3 : product 5 : order 1 : inbox 1) by ``--users``: per route p50/p95/p99/max and errors,
req/s, CPU, each app's RSS/USS/PSS; every order checked in its inbox. The single shape: the four apps
forked from one parent, as ``make run`` starts them. ``--shape both``: that and deploy/cluster.py's
(two replicas of every app, Redis) in turn, ``--rounds`` times; ``--baseline REV``: this source's stack
and that revision's in turn. Targets: ≥ 2 × the baseline's req/s with 0 errors; the four apps ≤ 300 MB
PSS under load.

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import socket
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # the repository first, or bench/gateway.py shadows `gateway`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import harness as h  # noqa: E402
from bench.search import description, variety_name  # noqa: E402

LATENCY_PLOT = h.REPO / "docs" / "load-latency.png"
MEMORY_PLOT = h.REPO / "docs" / "load-memory.png"
APPS = h.APPS
MEMORY_TARGET_MB, SPEED_UP_TARGET = 300.0, 2.0  # the four apps' PSS under load; req/s ÷ the baseline's
READY_TIMEOUT = 300.0  # s for the apps to answer (a busy 2-core machine is slow)
GENERATOR = "load generator (this script)"

# The traffic mix: activity → weight (requests of that kind out of 20).
MIX = {"browse": 10, "search": 3, "product": 5, "order": 1, "inbox": 1}
# Routes as reported (an activity may use several: browsing is the shop list, a shop's first page, or
# the next page of what the user was looking at).
ROUTES = {
    "browse: shops": "GET /api/v1/shops", "browse: shop's products": "GET /api/v1/products?shop_id=…",
    "browse: next page": "GET /api/v1/products?shop_id=…&cursor=…", "search": "GET /api/v1/products?q=…",
    "product page": "GET /api/v1/products/{id}", "order": "POST /api/v1/orders",
    "grower inbox": "GET /api/v1/notifications",
}

VARIANTS = [("Củ giống", 35_000), ("Cây con", 60_000), ("Chậu 30 cm", 150_000), ("Chậu 50 cm", 320_000)]
# What buyers type (the words of the seeded names, with and without accents) and the growers' shops' names.
SEARCHES, GROWER_NAMES = h.WORDS["searches"], h.WORDS["grower_names"]


@dataclass
class Grower:
    phone: str
    headers: dict[str, str]
    shop_id: int


@dataclass
class World:
    growers: list[Grower]
    shop_ids: list[int]
    product_ids: list[int]
    variants_by_shop: dict[int, list[dict]]  # shop → [{id, retail_price, tiers}]
    addresses: list[tuple[str, str]]  # (province_code, ward_code)
    photos: int = 0
    photo_bytes: int = 0


def product_body(rng: random.Random, n: int) -> dict:
    name, category = variety_name(rng)
    variants = []
    for label, base in rng.sample(VARIANTS, rng.randint(1, 3)):
        price = base + 1_000 * rng.randint(0, 30)
        tiers = [{"min_quantity": 10, "unit_price": price * 85 // 100}]
        if rng.random() < 0.6:
            tiers.append({"min_quantity": 50, "unit_price": price * 70 // 100})
        variants.append({"label": label, "retail_price": price, "wholesale_tiers": tiers,
                         "min_order_quantity": 1, "stock": 500_000})
    return {"name": f"{name} #{n}", "category": category, "status": "active", "variants": variants,
            "description": description(rng, name)}


async def seed(client, args: argparse.Namespace, rng: random.Random) -> World:
    provinces = h.expect(await client.get("/api/v1/provinces"), 200, "GET /provinces")
    codes = [p["code"] for p in provinces]
    addresses: list[tuple[str, str]] = []
    for code in rng.sample(codes, min(8, len(codes))):
        wards = h.expect(await client.get(f"/api/v1/provinces/{code}/wards"), 200, "GET wards")
        addresses += [(code, w["code"]) for w in rng.sample(wards, min(10, len(wards)))]
    growers: list[Grower] = []
    for i in range(args.growers):
        while (phone := h.mobile(rng)) in {g.phone for g in growers}:
            pass
        province, ward = addresses[i % len(addresses)]
        headers, shop = await h.open_shop(client, phone, name=f"Chủ vườn {i + 1}", shop={
            "name": GROWER_NAMES[i % len(GROWER_NAMES)] + ("" if i < len(GROWER_NAMES) else f" {i + 1}"),
            "description": "Sen, súng và cây thủy sinh từ vườn nhà, giao tận nơi.",
            "province_code": province, "ward_code": ward, "street": f"{rng.randint(1, 300)} Ấp Mỹ Hòa", "phone": phone,
            "delivery": {"pickup": True, "flat_fee": 30_000, "fee_by_province": {province: 15_000},
                         "free_above": 1_000_000},
            "bank": {"bin": "970415", "account_number": f"1133{rng.randrange(10**8):08d}",
                     "holder": f"Nguyễn Văn {chr(65 + i % 26)}"}})
        growers.append(Grower(phone, headers, shop["id"]))  # signed in for 15 minutes, longer than a run
    world = World(growers, [g.shop_id for g in growers], [], defaultdict(list), addresses)

    async def add(n: int) -> None:
        grower = growers[n % len(growers)]
        product = h.expect(await client.post("/api/v1/products", headers=grower.headers,
                                                 json=product_body(rng, n + 1)), 201, "list a variety")
        world.product_ids.append(product["id"])
        world.variants_by_shop[grower.shop_id] += [
            {"id": v["id"], "tiers": [t["min_quantity"] for t in v["wholesale_tiers"]]} for v in product["variants"]]
        if n < args.photos:  # the JPEG made off the event loop, so that the other requests go on meanwhile
            jpeg = await asyncio.to_thread(h.photo_jpeg, n)
            h.expect(await client.post(f"/api/v1/products/{product['id']}/photos", content=jpeg, headers={
                **grower.headers, "Content-Type": "image/jpeg"}), 201, "add a photo")
            world.photos, world.photo_bytes = world.photos + 1, world.photo_bytes + len(jpeg)

    for start in range(0, args.products, 8):
        await asyncio.gather(*(add(n) for n in range(start, min(start + 8, args.products))))
    return world


@dataclass
class Record:
    t: float  # seconds since the load began, when the request was sent
    route: str
    ms: float
    ok: bool


@dataclass
class Load:
    gateway: str  # its URL; each virtual user has a connection of its own (user["conn"])
    world: World
    rng: random.Random
    started: float = 0.0
    records: list[Record] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orders_placed: int = 0

    async def send(self, user: dict, route: str, method: str, path: str, expect: int, **kwargs):
        t0 = time.perf_counter()
        body, why = None, ""
        try:
            reply = await user["conn"].request(method, path, **kwargs)
            if reply.status == expect:
                body = reply.json()
            else:
                why = (f"{reply.status} {reply.headers.get('content-type', '')}: "
                       f"{reply.body[:160].decode(errors='replace')}")
        except h.Connection.ERRORS as exc:
            why = f"{type(exc).__name__}: {exc}"
        self.records.append(Record(t0 - self.started, route, (time.perf_counter() - t0) * 1000, body is not None))
        if body is None:
            self.failures[f"{route}: {why}"] += 1
        return body

    async def browse(self, user: dict) -> None:
        if user.get("cursor") and self.rng.random() < 0.5:
            page = await self.send(user, "browse: next page", "GET", "/api/v1/products", 200,
                                   params={"shop_id": user["shop"], "cursor": user["cursor"]})
        elif self.rng.random() < 0.2:
            await self.send(user, "browse: shops", "GET", "/api/v1/shops", 200)
            return
        else:
            user["shop"] = self.rng.choice(self.world.shop_ids)
            page = await self.send(user, "browse: shop's products", "GET", "/api/v1/products", 200,
                                   params={"shop_id": user["shop"]})
        user["cursor"] = page.get("next_cursor") if page else None

    async def search(self, user: dict) -> None:
        await self.send(user, "search", "GET", "/api/v1/products", 200, params={"q": self.rng.choice(SEARCHES)})

    async def product(self, user: dict) -> None:
        await self.send(user, "product page", "GET", f"/api/v1/products/{self.rng.choice(self.world.product_ids)}", 200)

    async def order(self, user: dict) -> None:
        rng = self.rng
        shop_id = rng.choice(self.world.shop_ids)
        variants = rng.sample(self.world.variants_by_shop[shop_id],
                              min(rng.choice((1, 1, 2, 3)), len(self.world.variants_by_shop[shop_id])))
        # Mostly retail; now and then enough for a wholesale tier.
        lines = [{"variant_id": v["id"], "quantity": rng.randint(1, 4) if rng.random() < 0.7 or not v["tiers"]
                  else rng.choice(v["tiers"]) + rng.randint(0, 5)} for v in variants]
        province, ward = rng.choice(self.world.addresses)
        contact = {"name": rng.choice(h.BUYER_NAMES), "phone": h.mobile(rng)}
        if rng.random() < 0.3:
            contact["email"] = f"khach{rng.randrange(10**6)}@example.vn"
        address = {"province_code": province, "ward_code": ward, "street": f"{rng.randint(1, 999)} Nguyễn Huệ"}
        body = {"shop_id": shop_id, "lines": lines, "contact": contact, "address": address,
                "payment_method": rng.choice(("cod", "cod", "bank_transfer")),
                "delivery_method": "ship", "consent": True}
        if await self.send(user, "order", "POST", "/api/v1/orders", 201, json=body,
                           headers={"Idempotency-Key": uuid.uuid4().hex}) is not None:
            self.orders_placed += 1

    async def inbox(self, user: dict) -> None:
        await self.send(user, "grower inbox", "GET", "/api/v1/notifications", 200,
                        headers=self.rng.choice(self.world.growers).headers)

    async def one(self, user: dict) -> None:
        await getattr(self, self.rng.choices(list(MIX), weights=list(MIX.values()))[0])(user)


async def run_load(load: Load, args: argparse.Namespace, until: float) -> None:
    """Closed model: ``--users`` each sending the next request when the last is answered."""
    async def user_loop() -> None:
        user: dict = {"conn": h.Connection(load.gateway)}
        try:
            while time.monotonic() < until:
                await load.one(user)
        finally:
            user["conn"].close()

    await asyncio.gather(*(user_loop() for _ in range(args.users)))


async def wait_for_inboxes(load: Load, timeout: float) -> tuple[int, float]:
    """Until the growers' inboxes hold a notification for every order placed (over NATS); returns
    the notifications found and the seconds waited."""
    started, conn = time.monotonic(), h.Connection(load.gateway)
    try:
        while True:
            found = 0
            for grower in load.world.growers:
                reply = await conn.request("GET", "/api/v1/notifications", params={"limit": 1},
                                           headers=grower.headers)
                found += reply.json()["unread_count"] if reply.status == 200 else 0
            waited = time.monotonic() - started
            if found >= load.orders_placed or waited >= timeout:
                return found, waited
            await asyncio.sleep(0.5)
    finally:
        conn.close()


def route_table(routes: dict[str, dict], duration: float) -> str:
    return h.table(["route", "request", "count", "req/s", "p50 (ms)", "p95 (ms)", "p99 (ms)", "max (ms)", "errors"],
                   [[f"**{n}**" if n == "all" else n, "" if n == "all" else f"`{ROUTES[n]}`", f"{r['count']:,}",
                     f"{r['count'] / duration:.1f}", *(f"{r[k]:.1f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
                     r["errors"]] for n, r in routes.items()], left=2)


PHASES = {"started": "started", "idle": "seeded", "load_mean": "load", "load_peak": "load", "after": "after"}


def by_app(values: dict[str, float | None]) -> dict[str, float | None]:
    """Replicas added up: {"gateway-1": …, "gateway-2": …} → {"gateway": …} (None if any is)."""
    out: dict[str, float | None] = {}
    for name, v in values.items():
        app = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        out[app] = None if v is None or out.get(app, 0.0) is None else out.get(app, 0.0) + v
    return out


def memory_figures(samples: list[h.MemorySample]) -> dict:
    """Per app and for the four together, RSS, USS and PSS: at start, idle after seeding, mean and peak
    under load, after (None where not read)."""
    out: dict = {}
    for name in [*APPS, "total"]:
        out[name] = {}
        for kind in ("rss", "uss", "pss"):
            series: dict[str, list[float]] = defaultdict(list)
            for s in samples:
                per_app = by_app(getattr(s, kind))
                values = [per_app[a] for a in (APPS if name == "total" else (name,))]
                if None not in values:
                    series[s.phase].append(sum(values))
            out[name][kind] = {key: (statistics.fmean if key == "load_mean" else max if key == "load_peak" else
                                     lambda v: v[-1])(series[phase]) if series[phase] else None
                               for key, phase in PHASES.items()}
    return out


def memory_table(mem: dict, kind: str) -> str:
    k, rows = kind.upper(), []
    for name in [*APPS, "total"]:
        cells = ["–" if v is None else f"{v:.0f}" for v in mem[name][kind].values()]
        rows.append(["**four apps**", *(f"**{c}**" for c in cells)] if name == "total" else [name, *cells])
    return h.table(["app", f"{k} started (MB)", f"{k} idle, seeded (MB)", f"{k} under load, mean (MB)",
                    f"{k} under load, peak (MB)", f"{k} after the load (MB)"], rows)


def plot(load: Load, samples: list[h.MemorySample], duration: float, title: str) -> None:
    """The latency (p50 per route, p99 of all) and req/s per time bucket; each app's RSS stacked, read every second."""
    from matplotlib import colormaps

    bucket, buckets = max(1.0, round(duration / 60)), defaultdict(list)
    for r in load.records:
        if 0 <= r.t < duration:
            buckets[int(r.t // bucket)].append(r)
    xs = sorted(buckets)
    centres = [(x + 0.5) * bucket for x in xs]
    with h.figure(LATENCY_PLOT, (10, 7.5), 3, 1.3, title=title) as (ax, ax2):
        for route, colour in zip([*ROUTES, "all"], [*colormaps["tab10"].colors[:len(ROUTES)], "black"], strict=True):
            ax.plot(centres, [h.pct([r.ms for r in buckets[x] if route in ("all", r.route)], 99 if route == "all"
                                    else 50) for x in xs], "--" if route == "all" else "-", color=colour, linewidth=1.3,
                    label="all routes p99" if route == "all" else f"{route} p50")
        ax.set(yscale="log", ylabel=f"latency (ms), per {bucket:g} s")
        ax2.bar(centres, [len(buckets[x]) / bucket for x in xs], width=bucket * 0.9, color="tab:gray", label="req/s")
        ax2.bar(centres, [sum(not r.ok for r in buckets[x]) / bucket for x in xs], width=bucket * 0.9,
                color="tab:red", label="errors/s")
        ax2.set(ylabel="req/s", xlabel="seconds into the load")
    with h.figure(MEMORY_PLOT, (10, 4.5), title=title) as (ax,):
        ts, rss = [s.t - load.started for s in samples], [by_app(s.rss) for s in samples]
        ax.stackplot(ts, *[[r[a] for r in rss] for a in APPS], labels=[f"{a} RSS" for a in APPS], alpha=0.75)
        ax.axhline(MEMORY_TARGET_MB, color="tab:red", linestyle="--", linewidth=1,
                   label=f"target ≤ {MEMORY_TARGET_MB:.0f} MB (four apps together, PSS)")
        for now, before in zip(samples[1:], samples, strict=False):
            if now.phase != before.phase:
                ax.axvline(now.t - load.started, color="grey", linestyle=":", linewidth=1)
        ax.set(xlabel="seconds from the start of the measured load (dotted lines: started, seeding, seeded, warm-up, "
               "load, after)", ylabel="resident memory (MB), read every second")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__, env="--app-env", pg="--pg-admin-dsn", nats=True)
    p.add_argument("--duration", "-d", type=float, default=120.0, help="seconds of measured load")
    p.add_argument("--users", "-u", type=int, default=32, help="virtual users (closed model)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of the same load first, not measured")
    p.add_argument("--growers", type=int, default=8, help="growers, each with a shop")
    p.add_argument("--products", type=int, default=200, help="varieties, spread over the shops (1–3 variants)")
    p.add_argument("--photos", type=int, default=6, help="varieties that get a photo (1200×900 JPEG)")
    p.add_argument("--rate-limit-factor", type=int, default=1000, help="the gateway's rate limits × this")
    p.add_argument("--shape", choices=("single", "cluster", "both"), default="single", help="single: one process "
                   "per app; cluster: deploy/cluster.py's replicas and Redis; both: the two in turn, --rounds times")
    p.add_argument("--baseline", metavar="REV", help="also a stack of this git revision's source, in turn with this "
                   "one's (--shape single)")
    p.add_argument("--rounds", type=int, help="rounds of (single, cluster) with --shape both, default 2; of (this, "
                   "baseline) with --baseline, default 1")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="--shape cluster or both: the "
                   "gateways' rate limits (both shapes use it)")
    p.add_argument("--no-plot", action="store_true", help=f"do not write {LATENCY_PLOT.name} and {MEMORY_PLOT.name}")
    p.add_argument("--write-docs", action="store_true", help="replace the sections Load and Memory of "
                   "docs/performance.md with this run's figures (--shape single)")
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.shape == "both" else 1)
    if args.duration <= 0 or args.users < 1 or args.warmup < 0 or not 1 <= args.growers <= args.products \
            or args.rounds < 1 or ((args.write_docs or args.baseline) and args.shape != "single") \
            or (args.write_docs and args.baseline):
        p.error("--duration > 0, --users ≥ 1, --warmup ≥ 0, 1 ≤ --growers ≤ --products, --rounds ≥ 1; "
                "--write-docs or --baseline with --shape single, not both")
    return args


@dataclass
class Run:
    load: Load
    watch: h.MemoryWatch
    shape: str
    load_before: str  # the machine's load average before the run
    elapsed: float
    cpu: dict[str, float]  # CPU seconds per app (replicas added up) and the load generator
    orders: int  # placed during the measured part
    found: int  # notifications in the growers' inboxes after the load
    waited: float


def start_cluster(args: argparse.Namespace, bench: h.Bench, dbs: h.Databases,
                  env: dict[str, str]) -> tuple[h.Processes, str]:
    """deploy/cluster.py's shape on ``dbs``, started by its own code: two replicas of every app (the gateways
    sharing one port), each service's traffic spread over its replicas, Redis for the rate limits."""
    from deploy.cluster import Cluster, cluster_env

    for base in random.sample(range(20_000, 40_000, 100), 200):  # the base port and every replica's free
        with contextlib.ExitStack() as stack:
            with contextlib.suppress(OSError):
                for port in (base, *(base + 10 * n + k for n in (1, 2) for k in range(4))):
                    stack.enter_context(socket.socket()).bind(("127.0.0.1", port))
                break
    cluster = Cluster(bench.tmp / f"cluster-{base}", base, 2, {})
    (cluster.folder / "media").mkdir(parents=True)
    cluster.env = {**cluster_env(cluster, dbs.names["gateway"].rsplit("_", 1)[0], args.pg_admin_dsn, args.nats_url,
                                 env["EVENT_NAMESPACE"], args.redis_url), **h.base_env(), **env}
    bench.cleanups.append(cluster.stop_all)
    for app, n in cluster.names():  # all at once, as `make run-cluster`: migrations run once, under their lock
        cluster.start(app, n)
    procs = h.Processes([h.Child(name, proc, cluster.folder / "no.log") for name, proc in cluster.procs.items()])
    for app, n in cluster.names():
        cluster.wait_up(app, n, READY_TIMEOUT)
    h.wait_ready(procs, f"http://127.0.0.1:{base}/readyz", READY_TIMEOUT)
    return procs, f"http://127.0.0.1:{base}"


async def measure(args: argparse.Namespace, bench: h.Bench, shape: str = "single", stack: str = "this",
                  source: dict[str, str] | None = None) -> Run:
    """One run on fresh databases: ``shape``'s apps of ``stack`` (``source``: the environment that selects its
    source, :func:`harness.stacks`) seeded through the API with httpx, warmed up, then measured."""
    import httpx

    namespace, load_before, t0 = f"load{uuid.uuid4().hex[:8]}", h.load_average(), time.monotonic()
    dbs = await asyncio.to_thread(h.Databases, "postgres", bench.tmp, args.pg_admin_dsn, prefix="cv_load")
    bench.info["postgresql"] = dbs.version.split()[-1]
    if not args.keep:  # --keep keeps the databases and the stream too
        bench.cleanups += [dbs.drop, lambda: h.drop_stream(args.nats_url, namespace)]
    env = {"EVENT_BUS_URL": args.nats_url, "EVENT_NAMESPACE": namespace, "SMTP_URL": "",
           "GATEWAY_RATE_LIMITS": h.rate_limits(factor=args.rate_limit_factor), **h.env_pairs(args.app_env),
           **({"GATEWAY_REDIS_URL": args.redis_url} if args.shape != "single" else {}), **(source or {})}
    if shape == "single":
        procs, run_dir = bench.procs, bench.tmp / stack.split()[0]
        where = ("1 process per app, forked from one parent as `make run` starts them" if stack == "this"
                 else "1 process per app (forked from one parent where that source has common/launch.py)")
        run_dir.mkdir(exist_ok=True)
        gateway = (await asyncio.to_thread(h.start_apps, procs, bench.python, run_dir, dbs.urls, env=env,
                                           timeout=READY_TIMEOUT, launcher=True))["gateway"]
    else:
        (procs, gateway), where = await asyncio.to_thread(start_cluster, args, bench, dbs, env), "2 replicas"
    started_in = time.monotonic() - t0
    watch = h.MemoryWatch(procs)
    sampler = asyncio.create_task(watch.sample_every_second())
    await asyncio.sleep(2.5)
    title = f"load bench, {shape} shape" + ("" if stack == "this" else f", {stack}")
    bench.header(title, software=f"PostgreSQL {bench.info['postgresql']}, NATS at "
                 f"{args.nats_url}" + (f", Redis at {args.redis_url}" if args.shape != "single" else ""), apps=(
        f"{where} of every app (1 uvicorn worker each), PostgreSQL databases {', '.join(dbs.names.values())}, "
        f"EVENT_NAMESPACE={namespace}, LOG_LEVEL=WARNING" + "".join(f", {item}" for item in args.app_env)
        + f"; ready in {started_in:.1f} s"),
        limits=f"the gateway's rate limits × {args.rate_limit_factor} (GATEWAY_RATE_LIMITS), since every request "
        f"comes from 127.0.0.1", load=f"{args.users} virtual users, think time 0; mix "
        + ", ".join(f"{k} {v}" for k, v in MIX.items()) + f"; {args.warmup:g} s warm-up, {args.duration:g} s measured")
    async with httpx.AsyncClient(base_url=gateway, timeout=httpx.Timeout(30.0)) as client:
        rng, t_seed, watch.phase = random.Random(20261127), time.monotonic(), "seeding"
        world = await seed(client, args, rng)
    print(f"  seeded  : {len(world.growers)} growers with shops, {len(world.product_ids)} varieties, "
          f"{sum(len(v) for v in world.variants_by_shop.values())} variants, {world.photos} photos, "
          f"through the API in {time.monotonic() - t_seed:.1f} s", flush=True)
    watch.phase = "seeded"
    await asyncio.sleep(3.5)
    load = Load(gateway, world, rng)
    if args.warmup > 0:
        print(f"  warming up for {args.warmup:g} s …", flush=True)
        watch.phase, load.started = "warm-up", time.monotonic()
        await run_load(load, args, time.monotonic() + args.warmup)
        if warm_errors := sum(not r.ok for r in load.records):
            print(f"  warm-up : {warm_errors} errors of {len(load.records)}", flush=True)
        load.records.clear()
        load.failures.clear()
    orders_before = load.orders_placed
    print(f"  measuring for {args.duration:g} s …", flush=True)
    with h.CpuMeter(procs, own=GENERATOR, with_children=True) as meter:
        watch.phase, load.started = "load", time.monotonic()
        await run_load(load, args, load.started + args.duration)
        elapsed = time.monotonic() - load.started
        watch.phase = "after"
    procs.check_alive()
    found, waited = await wait_for_inboxes(load, timeout=30.0)
    await asyncio.sleep(3.5)
    sampler.cancel()
    procs.stop_all()
    return Run(load, watch, shape, load_before, elapsed, by_app(meter.used), load.orders_placed - orders_before,
               found, waited)


def report(args: argparse.Namespace, run: Run, bench: h.Bench) -> int:
    """Prints the figures; writes the plots, the JSON and the docs' sections when asked."""
    load, watch, info, world, records, fig = run.load, run.watch, bench.info, run.load.world, run.load.records, \
        figures(run, args)
    errors, throughput, mem = fig["errors"], fig["throughput_rps"], fig["memory_mb"]
    error_rate = errors / len(records) if records else 0.0
    rss_peak = mem["total"]["rss"]["load_peak"] or 0.0
    # What the four take together is their PSS (each shared page counted once); RSS added up counts the
    # libraries they share once per process. RSS only where PSS cannot be read.
    pss = mem["total"]["pss"]
    together, measure = (pss["load_peak"], "PSS") if pss["load_peak"] is not None else (rss_peak, "RSS added up")
    memory_met, events_ok = together <= MEMORY_TARGET_MB, run.found >= load.orders_placed
    routes = route_table(fig["routes"], args.duration)
    cpu = h.table(["process", "CPU (s)", "cores busy", "CPU per request (ms)"],
                  [[name, f"{sec:.1f}", f"{sec / run.elapsed:.2f}", f"{1000 * sec / max(len(records), 1):.2f}"]
                   for name, sec in run.cpu.items()])
    memory = [memory_table(mem, "rss"), *([memory_table(mem, "uss")] if watch.uss_available else []),
              *([f"PSS of the four together (shared pages counted once between them): started {pss['started']:.0f} "
                 f"MB, idle {pss['idle']:.0f} MB, under load mean {pss['load_mean']:.0f} MB, peak "
                 f"{pss['load_peak']:.0f} MB."] if pss["load_peak"] is not None else [])]
    headline = (f"**{throughput:.1f} req/s, {len(records):,} requests, {errors} errors (error rate "
                f"{100 * error_rate:.2f} %" + (f"; target 0: {'met' if errors == 0 else 'not met'})**; "
                if events_ok else ")**; ") + f"{run.orders} orders placed"
                + (f", and after the load the growers' inboxes held a notification for every order placed "
                   f"({run.found} for {load.orders_placed}, {run.waited:.1f} s after the load)." if events_ok else
                   f", but the growers' inboxes held only {run.found} notifications for {load.orders_placed} "
                   f"orders after {run.waited:.1f} s."))
    verdict = (f"Target: the four apps together ≤ {MEMORY_TARGET_MB:.0f} MB under load, i.e. their {measure} (each "
               f"page they share counted once): **{together:.0f} MB at the peak, {'met' if memory_met else 'not met'}"
               f"**. Their RSS added up, {rss_peak:.0f} MB, counts the shared pages once in every process.")
    print("\n" + "\n\n".join([headline, routes, "CPU used during the measured load:", cpu,
                              "Resident memory, sampled every second (MB = 2^20 bytes):", *memory, verdict]))
    if load.failures:
        print("\nerrors:\n" + "\n".join(f"  {n:>5} × {why}" for why, n in
                                       sorted(load.failures.items(), key=lambda kv: -kv[1])[:15]))
    date = h.now()
    if not args.no_plot:
        plot(load, watch.samples, run.elapsed, f"bench/load.py — closed model: {args.users} virtual users, "
             f"{args.duration:g} s, {throughput:.0f} req/s, {errors} errors ({date[:16]})")
        print(f"wrote {LATENCY_PLOT.relative_to(h.REPO)} and {MEMORY_PLOT.relative_to(h.REPO)}")
    bench.write_json(args, **fig, memory_samples=watch.samples, started=load.started)
    if args.write_docs:
        caveat = ([f"**A short validation run ({args.duration:g} s), not the measurement: "
                   "`make bench-load` (120 s) replaces these figures.**", ""] if args.duration < 120 else [])
        h.write_section("## Load", keep_subsections=True, text="\n".join([
            "## Load (bench/load.py)", "", *caveat, f"Date: {date}  ",
            f"Machine: {info['cpus']} CPUs, {info['cpu_model']}, {info['memory']}, {info['kernel']}; Python "
            f"{info['python']}, PostgreSQL {info['postgresql']}, NATS JetStream; load average before the run "
            f"{info['load_before']}  ", f"Source: commit {info['source']}  ", f"Command: `{bench.command}`", "",
            "The four apps, one process each, on fresh PostgreSQL databases and NATS JetStream, the gateway's rate "
            f"limits × {args.rate_limit_factor}" + "".join(f", `{item}`" for item in args.app_env) + "; seeded "
            f"through the API: {len(world.growers)} growers, {len(world.product_ids)} varieties, {world.photos} "
            f"photos; {args.users} virtual users, think time 0 (closed model: req/s is the stack's capacity here, "
            f"latency mostly queueing), {args.warmup:g} s warm-up, {args.duration:g} s measured. Method: "
            "bench/README.md.", "",
            headline, "", routes, "", "CPU used during the measured load:", "", cpu, "",
            "![latency and throughput over time](load-latency.png)",
        ]))
        h.write_section("## Memory", keep_subsections=True, text="\n".join([
            "## Memory (bench/load.py)", "", *caveat,
            "The same run as Load above: each app's RSS, USS and PSS (MB = 2^20 bytes), read every second "
            "(bench/README.md).", "", *(line for table in memory for line in (table, "")), verdict, "",
            "![resident memory over time](load-memory.png)",
        ]))
        print(f"wrote {h.PERFORMANCE_MD.relative_to(h.REPO)} (sections Load and Memory)")
    return 0 if errors == 0 and events_ok else 1


def figures(run: Run, args: argparse.Namespace) -> dict:
    """One run's figures (the JSON): requests, errors, req/s, per route, CPU seconds and memory (MB)."""
    records, routes = run.load.records, {}
    for route in [*ROUTES, "all"]:
        if rs := [r for r in records if route in ("all", r.route)]:
            ms = [r.ms for r in rs]
            routes[route] = {"count": len(rs), **{f"p{q}_ms": h.pct(ms, q) for q in (50, 95, 99)}, "max_ms": max(ms),
                             "errors": sum(not r.ok for r in rs)}
    # Every request counted was sent within the measured --duration; the last replies come a little later.
    return {"shape": run.shape, "load_before": run.load_before, "duration_s": run.elapsed, "requests": len(records),
            "errors": sum(not r.ok for r in records), "throughput_rps": len(records) / args.duration,
            "p99_ms": h.pct([r.ms for r in records], 99), "orders": run.orders, "notifications_found": run.found,
            "orders_placed": run.load.orders_placed, "routes": routes, "cpu_s": run.cpu,
            "failures": dict(run.load.failures), "memory_mb": memory_figures(run.watch.samples)}


def compare(args: argparse.Namespace, bench: h.Bench) -> int:
    """``--shape both`` or ``--baseline``: two stacks in turn, ``--rounds`` times, each on fresh databases (the
    single-process shape and the cluster's, or this source's and the baseline's); a row per run, the
    medians per stack and their ratio (cluster ÷ single, this ÷ baseline), per route too."""
    if args.baseline:
        plans = {name: ("single", name, env) for name, env in h.stacks(bench.tmp, args.baseline).items()}
        over = tuple(plans)
    else:
        plans, over = {shape: (shape, "this", None) for shape in ("single", "cluster")}, ("cluster", "single")
    runs = []
    for n in range(1, args.rounds + 1):
        for name, plan in plans.items():
            runs.append(f := figures(asyncio.run(measure(args, bench, *plan)), args) | {"round": n, "stack": name})
            print(f"  round {n}, {name}: {f['throughput_rps']:.1f} req/s, p99 {f['p99_ms']:.1f} ms, {f['errors']} "
                  "errors" + "".join(f"\n    {c:>5} × {why}" for why, c in sorted(f["failures"].items(),
                                                                                 key=lambda kv: -kv[1])[:5]))
    per_request = {"apps' CPU per request (ms)": lambda f: sum(v for k, v in f["cpu_s"].items() if k in APPS),
                   "generator CPU per request (ms)": lambda f: f["cpu_s"].get(GENERATOR, 0.0)}
    cols = {"req/s": lambda f: f["throughput_rps"], "p99 (ms)": lambda f: f["p99_ms"],
            **{k: lambda f, c=c: 1000 * c(f) / max(f["requests"], 1) for k, c in per_request.items()},
            "PSS under load, peak (MB)": lambda f: f["memory_mb"]["total"]["pss"]["load_peak"] or math.nan}
    print("\n" + h.table(["round", "stack", "load average before", *cols, "requests", "errors", "orders in inboxes"],
                         [[f["round"], f["stack"], f["load_before"], *(f"{c(f):.1f}" for c in cols.values()),
                           f"{f['requests']:,}", f["errors"], f"{f['notifications_found']} of {f['orders_placed']}"]
                          for f in runs], left=3))
    med = {name: {k: statistics.median(c(f) for f in runs if f["stack"] == name) for k, c in cols.items()}
           for name in plans}
    a, b = over
    print(f"\nmedians, {a} ÷ {b}: " + "; ".join(f"{k}: {med[a][k]:.1f} and {med[b][k]:.1f} (× "
                                              f"{h.ratio(med[a][k], med[b][k]):.2f})" for k in cols))
    routes = {name: {route: {q: h.pct([f["routes"][route][q] for f in runs if f["stack"] == name
                                       and route in f["routes"]], 50) for q in ("p50_ms", "p99_ms")}
                     for route in [*ROUTES, "all"]} for name in plans}
    print("\n" + h.table(["route", *(f"{n}: p50 / p99 (ms)" for n in plans), f"p50, p99: {a} ÷ {b}"],
                         [[route, *(f"{routes[n][route]['p50_ms']:.1f} / {routes[n][route]['p99_ms']:.1f}"
                                    for n in plans),
                           " / ".join(f"× {h.ratio(routes[a][route][q], routes[b][route][q]):.2f}"
                                      for q in ("p50_ms", "p99_ms"))] for route in [*ROUTES, "all"]]))
    errors = sum(f["errors"] for f in runs if f["stack"] == a)
    if args.baseline:
        speed_up, pss = h.ratio(med[a]["req/s"], med[b]["req/s"]), med[a]["PSS under load, peak (MB)"]
        print(f"\ntarget ≥ {SPEED_UP_TARGET:g} × the baseline's req/s with 0 errors: × {speed_up:.2f}, {errors} "
              f"errors ({'met' if speed_up >= SPEED_UP_TARGET and errors == 0 else 'NOT met'}); the four apps ≤ "
              f"{MEMORY_TARGET_MB:.0f} MB PSS under load, peak: {pss:.0f} MB "
              f"({'met' if pss <= MEMORY_TARGET_MB else 'NOT met'})")
    print(f"load average after the run {h.load_average()}")
    bench.write_json(args, runs=runs, medians=med, route_medians=routes)
    return 0 if all(f["errors"] == 0 for f in runs) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body = compare if args.shape == "both" or args.baseline else \
        lambda a, bench: report(a, asyncio.run(measure(a, bench, a.shape)), bench)
    return h.run(__file__, lambda bench: body(args, bench), needs=("httpx", "psutil", "services.catalog"),
                 target="bench-load", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

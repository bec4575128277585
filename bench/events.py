"""How soon does a grower see a new order? Order placed → on the grower's live stream, per event transport.

Per transport (HTTP push; NATS JetStream under a namespace of its own) the four apps, a grower's shop and
live stream; guest orders steady (``--rate``) and in a burst (``--concurrency``), each matched to its event:
p50/p95/p99/max of POST sent → event read, where the time goes, events lost. Target: p95 ≤ 500 ms.

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # the repository first, or bench/gateway.py shadows `gateway`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import harness as h  # noqa: E402

TARGET_P95_MS = 500.0
ORDER_LIMIT = 1_000_000  # the gateway's order limit per address (20 a minute): every order comes from 127.0.0.1
# time.time() − time.monotonic(): turns the servers' created_at (wall clock, same machine) into the
# monotonic clock the bench measures with.
WALL_OFFSET = time.time() - time.monotonic()

PRODUCT = {
    "name": "Súng Thái đỏ", "description": "Hoa đỏ, nở ngày", "category": "water_lily", "status": "active",
    "variants": [{"label": "Củ giống", "retail_price": 45000, "stock": 1_000_000, "min_order_quantity": 1}],
}


def start_stack(args: argparse.Namespace, bench: h.Bench, transport: str) -> tuple[str, str]:
    """The four apps in ``tmp/<transport>``: (the gateway's URL, the NATS namespace); the databases and
    the NATS stream are removed at the end."""
    folder = bench.tmp / transport
    folder.mkdir()
    dbs = h.Databases(args.backend, folder, args.postgres_dsn, prefix="cv_bench_events")
    bench.cleanups.append(dbs.drop)
    env = {"GATEWAY_RATE_LIMITS": h.rate_limits(order_ip=ORDER_LIMIT), **h.env_pairs(args.env)}
    namespace = ""
    if transport == "nats":
        namespace = f"bench{uuid.uuid4().hex[:8]}"
        env.update(EVENT_BUS_URL=args.nats_url, EVENT_NAMESPACE=namespace)
        bench.cleanups.append(lambda: h.drop_stream(args.nats_url, namespace))
    urls = h.start_apps(bench.procs, bench.python, folder, dbs.urls, env=env)
    return urls["gateway"], namespace


async def set_up_grower(gateway: str) -> tuple[str, int]:
    """A grower, their shop and one variety, all through the gateway. Returns (access token, variant id)."""
    import httpx

    async with httpx.AsyncClient(base_url=gateway, timeout=15) as gw:
        headers, _ = await h.open_shop(gw, "0912 345 678", name="Vườn Sen Bà Tư")
        product = h.expect(await gw.post("/api/v1/products", json=PRODUCT, headers=headers), 201, "add the variety")
    return headers["Authorization"].split(" ", 1)[1], product["variants"][0]["id"]


@dataclass
class Arrival:
    at: float  # time.monotonic() when the event's bytes were read
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
        self.ready, self.error, self._socket, self._stopping = threading.Event(), None, None, False

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
                    elif line.startswith("data:"):
                        first_at = first_at if data else now
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
            return
        if (code := note["data"]["code"]) in self.arrivals:
            self.duplicates.append(code)
        else:
            created = dt.datetime.fromisoformat(note["created_at"]).timestamp() - WALL_OFFSET
            self.arrivals[code] = Arrival(at, created)

    def stop(self) -> None:
        """End the stream from the client's side (the server then lets go of it at once)."""
        self._stopping = True
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self.join(timeout=5)


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
    return json.dumps(h.guest_order(variant_id, name=f"Khách {index + 1}", delivery_method="pickup"),
                      ensure_ascii=False).encode()


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


async def run_phase(phase: Phase, gateway: str, variant_id: int, listener: StreamListener, settle: float) -> None:
    import httpx

    limits = httpx.Limits(max_connections=max(phase.concurrency or 0, 64), max_keepalive_connections=64)
    phase.placed = [Placed(i) for i in range(phase.orders)]
    async with httpx.AsyncClient(base_url=gateway, timeout=30, limits=limits) as client:
        phase.started = time.monotonic()
        if phase.mode == "steady":  # open loop: each order on its own schedule
            tasks = []
            for placed in phase.placed:
                await asyncio.sleep(max(0.0, phase.started + placed.index / phase.rate - time.monotonic()))
                tasks.append(asyncio.create_task(place(client, variant_id, placed)))
            await asyncio.gather(*tasks)
        else:  # closed loop: each guest places the next order when the last is answered
            queue = iter(phase.placed)

            async def guest() -> None:
                for placed in queue:
                    await place(client, variant_id, placed)

            await asyncio.gather(*(guest() for _ in range(phase.concurrency)))
        phase.ended = max(p.replied for p in phase.placed)
        await wait_seen(listener, [p.code for p in phase.placed if p.code], settle)


async def wait_seen(listener: StreamListener, codes: list[str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(code in listener.arrivals for code in codes):
            return True
        if listener.error:
            raise h.BenchError(f"the grower's stream broke: {listener.error}")
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
                raise h.BenchError(f"a warm-up order was refused: {p.error}")
        if not await wait_seen(listener, [p.code for p in placed], timeout):
            missing = sum(1 for p in placed if p.code not in listener.arrivals)
            raise h.BenchError(f"{missing} of {count} warm-up orders never reached the grower's stream "
                             f"within {timeout:.0f} s")


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": h.pct(values, 50), "p95": h.pct(values, 95), "p99": h.pct(values, 99),
            "max": max(values) if values else math.nan}


def figures(phase: Phase, listener: StreamListener) -> dict:
    ok = [p for p in phase.placed if p.code]
    arrived = [(p, listener.arrivals[p.code]) for p in ok if p.code in listener.arrivals]
    codes, ms = {p.code for p in ok}, 1000.0

    def timeline(p: Placed, a: Arrival | None) -> list[float | None]:
        moments = (p.sent, p.replied, p.created_at, a.created_at if a else None, a.at if a else None)
        return [None if t is None else round((t - phase.started) * ms, 3) for t in moments]

    return {
        "transport": phase.transport, "mode": phase.mode, "orders": phase.orders, "rate": phase.rate,
        "concurrency": phase.concurrency, "placed": len(ok),
        "errors": Counter(p.error or str(p.status) for p in phase.placed if not p.code),
        "lost": len(ok) - len(arrived), "duplicates": sum(1 for c in listener.duplicates if c in codes),
        "achieved_rate": len(phase.placed) / max(phase.ended - phase.started, 1e-9),
        "to_201_ms": summary([(p.replied - p.sent) * ms for p in ok]),
        "to_stream_ms": summary([(a.at - p.sent) * ms for p, a in arrived]),
        "to_order_built_ms": summary([(p.created_at - p.sent) * ms for p, _ in arrived]),
        "order_to_inbox_row_ms": summary([(a.created_at - p.created_at) * ms for p, a in arrived]),
        "row_to_stream_ms": summary([(a.at - a.created_at) * ms for _, a in arrived]),
        "after_201_ms": summary([(a.at - p.replied) * ms for p, a in arrived]),
        "before_201": sum(1 for p, a in arrived if a.at < p.replied),
        "cpu_ms_per_order": {name: sec * ms / max(len(phase.placed), 1) for name, sec in phase.cpu.items()},
        "other_cores": phase.other_cores,
        # Each order's timeline, ms from the phase's start: POST sent, 201 read, order built (orders'
        # created_at), inbox row made (notify's created_at), event read from the stream (None: lost).
        "timeline_ms": [timeline(p, listener.arrivals.get(p.code)) for p in ok],
    }


def describe(fig: dict) -> str:
    return f"steady {fig['rate']:g}/s" if fig["mode"] == "steady" else f"burst ×{fig['concurrency']}"


def print_table(results: list[dict], max_other_cores: float) -> None:
    """The two tables, then the verdict per phase."""
    print("\n" + h.table(["transport", "load", "orders", "orders/s", "to 201 p50 / p95 (ms)", "to stream p50", "p95",
                          "p99", "max (ms)", "lost", "dup.", "errors"],
                         [[f["transport"], describe(f), f["placed"], f"{f['achieved_rate']:.1f}",
                           f"{f['to_201_ms']['p50']:.1f} / {f['to_201_ms']['p95']:.1f}",
                           *(f"{f['to_stream_ms'][k]:.1f}" for k in ("p50", "p95", "p99", "max")),
                           f["lost"], f["duplicates"], sum(f["errors"].values())] for f in results], left=2))
    print("\nWhere the time goes (p50 / p95, ms), by the servers' own clocks (bench/README.md says what each "
          "step holds):\n")
    stages = ("to_order_built_ms", "order_to_inbox_row_ms", "row_to_stream_ms", "after_201_ms")
    print(h.table(["transport", "load", "→ order built", "→ inbox row", "→ on the stream", "after 201",
                   "event before 201", "CPU ms per order", "other cores"],
                  [[f["transport"], describe(f), *(f"{f[k]['p50']:.1f} / {f[k]['p95']:.1f}" for k in stages),
                    f"{f['before_201']} of {f['placed']}",
                    ", ".join(f"{n} {v:.1f}" for n, v in f["cpu_ms_per_order"].items()), f"{f['other_cores']:.2f}"]
                   for f in results], left=2) + "\n")
    for f in results:
        p95 = f["to_stream_ms"]["p95"]
        notes = [*([f"{f['lost']} LOST"] if f["lost"] else []),
                 *(["refused: " + ", ".join(f"{k} ×{v}" for k, v in f["errors"].items())] if f["errors"] else []),
                 *([f"other processes kept {f['other_cores']:.2f} cores busy: disturbed"]
                   if f["other_cores"] > max_other_cores else [])]
        met = p95 <= TARGET_P95_MS and f["lost"] == 0 and f["placed"] > 0
        print(f"{f['transport']:<5} {describe(f):<14} p95 {p95:7.1f} ms (target ≤ {TARGET_P95_MS:.0f} ms), "
              f"lost {f['lost']}: {'met' if met else 'NOT met'}" + (f"  ({'; '.join(notes)})" if notes else ""))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__, env="--env", quiet=0.3, pg="--postgres-dsn", nats=True)
    p.add_argument("--transport", choices=("http", "nats", "both"), default="both",
                   help="http: HTTP push from the outbox to notify (the embedded default); nats: NATS JetStream")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite", help="the apps' databases")
    p.add_argument("--mode", choices=("steady", "burst", "both"), default="both",
                   help="steady: --orders at --rate per second; burst: --orders by --concurrency guests at once")
    p.add_argument("--orders", "-n", type=int, default=200, help="measured orders per transport and mode")
    p.add_argument("--rate", "-r", type=float, default=5.0, help="orders per second in the steady mode")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="guests placing orders at once in the burst mode")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured orders first, one at a time")
    p.add_argument("--settle", type=float, default=15.0, help="seconds to wait after the last reply for events "
                   "still on their way; what has not arrived by then is lost")
    args = p.parse_args(argv)
    if args.orders < 1 or args.rate <= 0 or args.concurrency < 1 or args.warmup < 1 or args.settle <= 0:
        p.error("--orders, --concurrency and --warmup must be ≥ 1; --rate and --settle > 0")
    return args


def measure_transport(args: argparse.Namespace, bench: h.Bench, transport: str) -> list[dict]:
    started, listener = time.monotonic(), None
    gateway, namespace = start_stack(args, bench, transport)
    try:
        print(f"[{transport}] the four apps ready in {time.monotonic() - started:.1f} s"
              + (f" (NATS namespace {namespace})" if namespace else "") + "; a grower, a shop, a variety", flush=True)
        token, variant_id = asyncio.run(set_up_grower(gateway))
        listener = StreamListener(f"{gateway}/api/v1/notifications/stream", token)
        listener.start()
        if not listener.ready.wait(15) or listener.error:
            raise h.BenchError(f"the grower's stream did not open: {listener.error or 'no reply in 15 s'}")
        print(f"[{transport}] stream open; {args.warmup} warm-up order(s)", flush=True)
        asyncio.run(warm_up(gateway, variant_id, listener, args.warmup, timeout=30))
        results = []
        for mode in ("steady", "burst") if args.mode == "both" else (args.mode,):
            phase = Phase(transport, mode, args.orders, rate=args.rate if mode == "steady" else None,
                          concurrency=args.concurrency if mode == "burst" else None)
            label = f"[{transport}] {describe({'mode': mode, 'rate': args.rate, 'concurrency': args.concurrency})}"
            if args.wait_quiet > 0:
                h.wait_quiet(bench.procs, args.wait_quiet, args.max_other_cores, f"{label}: ")
            print(f"{label}: {args.orders} orders …", flush=True)
            with h.CpuMeter(bench.procs) as cpu:
                asyncio.run(run_phase(phase, gateway, variant_id, listener, args.settle))
            phase.cpu, phase.other_cores = cpu.used, cpu.other_cores
            bench.procs.check_alive()
            fig = figures(phase, listener)
            s = fig["to_stream_ms"]
            print(f"{label}: {fig['placed']} placed, {fig['lost']} lost; to stream p50 {s['p50']:.1f} ms, "
                  f"p95 {s['p95']:.1f} ms, max {s['max']:.1f} ms", flush=True)
            results.append(fig)
        return results
    finally:
        if listener is not None:
            listener.stop()
        bench.procs.stop_all()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transports = ("http", "nats") if args.transport == "both" else (args.transport,)

    def body(bench: h.Bench) -> int:
        if "nats" in transports and (why := h.nats_problem(args.nats_url)):
            sys.stderr.write(f"bench/events.py: NATS with JetStream is not usable at {args.nats_url} ({why}).\n"
                             "  Start nats-server with -js, or run --transport http.\n")
            return 2
        bench.header("events bench", apps=f"the four apps, 1 uvicorn process each, on {args.backend}, relays at "
                     f"their defaults, the order-ip rate limit {ORDER_LIMIT} a minute", load=(
            f"{args.warmup} warm-up orders, then per transport and mode {args.orders} orders (steady: {args.rate:g}/s; "
            f"burst: {args.concurrency} guests at once); latency = POST sent → its event read on the grower's stream"))
        results = [fig for transport in transports for fig in measure_transport(args, bench, transport)]
        print_table(results, args.max_other_cores)
        bench.info["load_after"] = h.load_average()
        print(f"(load average after the run {bench.info['load_after']})")
        bench.write_json(args, target_p95_ms=TARGET_P95_MS, results=results)
        # The verdict is printed; only lost events (a correctness failure) make the exit status non-zero.
        return 1 if any(f["lost"] for f in results) else 0

    return h.run(__file__, body, needs=("httpx", "services.notify"), target="bench-events", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

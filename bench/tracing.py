"""What tracing costs: the orders bench's buyers, the four apps with tracing off and then on, in one run.

Each round starts the four apps twice, on fresh databases: once as they run by default (no
``OTEL_*``: no exporter, no SDK imported) and once with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at
an OTLP/HTTP receiver in this process, which takes and counts what the apps export (it answers every
export at once, as a collector on the same network would). The same buyers place guest orders
through the gateway for the same time each. Printed: orders/s, latency, CPU per order of every app,
the spans received per order, and the ratios on/off of the same round; the modes alternate so that a
drift of the machine's speed falls on both.

    .venv/bin/python bench/tracing.py                       # SQLite, 2 rounds, 16 buyers, 15 s each
    .venv/bin/python bench/tracing.py --backend postgres --rounds 3 --write-docs
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:  # run as a script: the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # first, or bench/gateway.py shadows `gateway`

from bench import harness as h  # noqa: E402
from bench.orders import BENCH_ORDER_LIMIT, Ledger, Run, buyers, measured, seed_shop  # noqa: E402

APPS = ("gateway", "orders", "catalog", "notify")


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

    def take(self) -> tuple[int, int]:
        """(exports, spans) received since the last call."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        with self.lock:
            bodies, self.bodies = self.bodies, []
        spans = 0
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            spans += sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        return len(bodies), spans

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Measured:
    mode: str
    round: int
    run: Run
    spans: int = 0
    exports: int = 0

    def cpu_ms_per_order(self, app: str) -> float:
        return 1000 * self.run.cpu_s.get(app, 0.0) / self.run.ok if self.run.ok else float("nan")

    def apps_cpu_ms(self) -> float:
        return sum(self.cpu_ms_per_order(app) for app in APPS)


def one(args, bench: h.Bench, mode: str, round_: int, sink: Sink) -> Measured:
    run_dir = bench.tmp / f"{mode}-{round_}"
    run_dir.mkdir()
    dbs = h.Databases(args.backend, run_dir, args.pg_admin_dsn, prefix="cv_bench_tracing")
    try:
        tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "1000",
                   "OTEL_TRACES_SAMPLER": args.sampler,
                   **({"OTEL_TRACES_SAMPLER_ARG": args.sampler_arg} if args.sampler_arg else {})}
        urls = h.start_apps(bench.procs, bench.python, run_dir, dbs.urls, env={
            "GATEWAY_RATE_LIMITS": h.rate_limits(order_ip=BENCH_ORDER_LIMIT), **(tracing if mode == "on" else {})})
        shop = asyncio.run(seed_shop(urls["gateway"], args.variants, 1_000_000, 10))
        ledger = Ledger()
        asyncio.run(buyers(urls["gateway"], shop.many, args.concurrency, args.warmup, "warm-up", ledger,
                           progress=False))
        time.sleep(1.5)  # the warm-up's events and spans out of the way
        if args.wait_quiet > 0:
            h.wait_quiet(bench.procs, args.wait_quiet, args.max_other_cores, f"round {round_} tracing {mode} ")
        sink.take()
        run = measured(bench.procs, buyers(urls["gateway"], shop.many, args.concurrency, args.duration,
                                           f"round {round_}, tracing {mode}", ledger, progress=False))
        time.sleep(2.0)  # the batch exporters' last exports of the measured orders
        exports, spans = sink.take()
        result = Measured(mode, round_, run, spans, exports)
        print(f"  round {round_} tracing {mode:<3}: {run.rate:6.1f} orders/s, p50 {run.pct(50):6.1f} ms, "
              f"p99 {run.pct(99):6.1f} ms, apps' CPU {result.apps_cpu_ms():5.2f} ms/order"
              + (f", {spans / run.ok:.1f} spans/order" if mode == "on" and run.ok else ""), flush=True)
        return result
    finally:
        bench.procs.stop_all()
        dbs.drop()


def report(results: list[Measured], args, info: dict, command: str, started: str) -> str:
    def med(mode: str, f) -> float:
        return statistics.median(f(r) for r in results if r.mode == mode)

    rows = [[r.round, r.mode, f"{r.run.rate:.1f}", f"{r.run.pct(50):.1f}", f"{r.run.pct(99):.1f}",
             " / ".join(f"{r.cpu_ms_per_order(a):.2f}" for a in APPS), f"{r.apps_cpu_ms():.2f}",
             f"{r.spans / r.run.ok:.1f}" if r.mode == "on" and r.run.ok else "–", f"{r.run.other_cores:.2f}"]
            for r in results]
    table = h.table(["round", "tracing", "orders/s", "p50 (ms)", "p99 (ms)",
                     "CPU ms/order: " + " / ".join(APPS), "apps' CPU ms/order", "spans/order",
                     "other processes (cores)"], rows, left=2)
    disturbed = [r for r in results if r.run.other_cores > args.max_other_cores]
    warning = (f"\n**Disturbed**: other processes kept more than {args.max_other_cores:g} cores busy during "
               f"{len(disturbed)} of the {len(results)} runs (last column): these ratios measure the machine's "
               "load more than tracing; run again on a quiet machine.\n" if disturbed else "")
    ratios = []
    for n in sorted({r.round for r in results}):
        off = next(r for r in results if r.round == n and r.mode == "off")
        on = next(r for r in results if r.round == n and r.mode == "on")
        ratios.append((on.run.rate / off.run.rate, on.apps_cpu_ms() / off.apps_cpu_ms(),
                       on.run.pct(99) / off.run.pct(99)))
    rate = statistics.median(x[0] for x in ratios)
    cpu = statistics.median(x[1] for x in ratios)
    p99 = statistics.median(x[2] for x in ratios)
    per_app = {a: med("on", lambda r, a=a: r.cpu_ms_per_order(a)) / med("off", lambda r, a=a: r.cpu_ms_per_order(a))
               for a in APPS}
    sampler = args.sampler + (f" {args.sampler_arg}" if args.sampler_arg else "")
    machine_line = (f"{info['cpus']} CPUs, {info['cpu_model']}, {info['memory']}, {info['kernel']}; "
                    f"Python {info['python']}; load average before the run {info['load_before']}")
    spans_per_order = med("on", lambda r: r.spans / r.run.ok if r.run.ok else 0)
    text = f"""## Tracing (bench/tracing.py)

What tracing costs when it is on (decision 0026): the orders bench's guest orders through the
gateway, with the four apps started twice per round on fresh {args.backend} databases, tracing off
(the default) and on (OTLP/HTTP to a receiver in the bench process that answers at once; sampler
`{sampler}`, the batch exporter every second), the same {args.concurrency} buyers for {args.duration:g} s
each, after {args.warmup:g} s of warm-up; events by HTTP push. Off and on alternate, so a drift of the
machine's speed falls on both.

Date: {started}  
Machine: {machine_line}  
Source: commit {info['source']}  
Command: `{command}`

{table}
{warning}
Tracing on ÷ off, medians of the {len(ratios)} rounds: **orders/s × {rate:.2f}**, **the apps' CPU per
order × {cpu:.2f}** (gateway × {per_app['gateway']:.2f}, orders × {per_app['orders']:.2f}, catalog
× {per_app['catalog']:.2f}, notify × {per_app['notify']:.2f}), p99 × {p99:.2f}. Every order is a trace
of {spans_per_order:.0f} spans (by HTTP push: the gateway's request and its call to orders, orders' request and
its call to the catalog, the catalog's request, the relay's publish and its call to notify, notify's
request for the event; the reconciler's later commit starts none). Off, the apps run no OpenTelemetry
code but one test per request (the SDK is not imported). With a ratio sampler (`--sampler parentbased_traceidratio
--sampler-arg 0.1`) the unsampled orders pay only for the context they carry.
"""
    return text


def parse_args(argv: list[str] | None = None):
    p = h.Options(__doc__, pg="--pg-admin-dsn", quiet=0.3)
    p.set_defaults(pg_admin_dsn=os.environ.get("BENCH_POSTGRES_DSN", h.PG_ADMIN_DSN))
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (off, on)")
    p.add_argument("--duration", "-d", type=float, default=15.0, help="seconds measured per mode and round")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured orders first")
    p.add_argument("--concurrency", "-c", type=int, default=16, help="concurrent buyers")
    p.add_argument("--variants", type=int, default=50, help="variants the orders are spread over")
    p.add_argument("--sampler", default="parentbased_always_on", help="OTEL_TRACES_SAMPLER with tracing on")
    p.add_argument("--sampler-arg", default="", help="OTEL_TRACES_SAMPLER_ARG")
    p.add_argument("--write-docs", action="store_true", help="rewrite the Tracing section of docs/performance.md")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or args.concurrency < 1:
        p.error("--rounds and --concurrency must be ≥ 1, --duration > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body(bench: h.Bench) -> int:
        bench.header("tracing bench", load=(
            f"{args.concurrency} buyers, guest orders through the gateway, closed loop; {args.warmup:g} s warm-up, "
            f"then {args.duration:g} s per mode; {args.rounds} rounds of (off, on) on {args.backend}"))
        sink = Sink()
        bench.cleanups.append(sink.close)
        results = [one(args, bench, mode, n, sink) for n in range(1, args.rounds + 1) for mode in ("off", "on")]
        text = report(results, args, bench.info, bench.command, h.now())
        print("\n" + text)
        if args.write_docs:
            h.write_section("## Tracing", text)
        h.write_json(args.json, {"date": h.now(), "command": bench.command, "machine": bench.info, "runs": [
            {"round": r.round, "mode": r.mode, "spans": r.spans, "exports": r.exports, **r.run.summary()}
            for r in results]})
        return 0

    return h.run(__file__, body, needs=("services.orders", "opentelemetry.proto"), target="bench-tracing",
                 keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

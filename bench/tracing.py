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

    def cpu_ms(self, app: str | None = None) -> float:
        """CPU ms per order of one app, or of the four."""
        used = self.run.cpu_s.get(app, 0.0) if app else sum(self.run.cpu_s.get(a, 0.0) for a in APPS)
        return 1000 * used / self.run.ok if self.run.ok else float("nan")


def one(args, bench: h.Bench, mode: str, round_: int, sink: Sink) -> Measured:
    run_dir = bench.tmp / f"{mode}-{round_}"
    run_dir.mkdir()
    dbs = h.Databases(args.backend, run_dir, args.pg_admin_dsn, prefix="cv_bench_tracing")
    tracing = {"OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "1000",
               "OTEL_TRACES_SAMPLER": args.sampler, "OTEL_TRACES_SAMPLER_ARG": args.sampler_arg} if mode == "on" else {}
    try:
        urls = h.start_apps(bench.procs, bench.python, run_dir, dbs.urls,
                            env={"GATEWAY_RATE_LIMITS": h.rate_limits(order_ip=BENCH_ORDER_LIMIT), **tracing})
        shop = asyncio.run(seed_shop(urls["gateway"], args.variants))
        ledger = Ledger()
        asyncio.run(buyers(urls["gateway"], shop.many, args.concurrency, args.warmup, "warm-up", ledger))
        time.sleep(1.5)  # the warm-up's events and spans out of the way
        if args.wait_quiet > 0:
            h.wait_quiet(bench.procs, args.wait_quiet, args.max_other_cores, f"round {round_} tracing {mode} ")
        sink.take()
        run = measured(bench.procs, buyers(urls["gateway"], shop.many, args.concurrency, args.duration,
                                           f"round {round_}, tracing {mode}", ledger))
        time.sleep(2.0)  # the batch exporters' last exports of the measured orders
        result = Measured(mode, round_, run, sink.take()[1])
        print(f"  round {round_} tracing {mode:<3}: {run.rate:6.1f} orders/s, p99 {run.pct(99):6.1f} ms, "
              f"apps' CPU {result.cpu_ms():5.2f} ms/order, {result.spans / max(run.ok, 1):.1f} spans/order", flush=True)
        return result
    finally:
        bench.procs.stop_all()
        dbs.drop()


def report(results: list[Measured], args, bench: h.Bench) -> str:
    rows = [[r.round, r.mode, f"{r.run.rate:.1f}", f"{r.run.pct(99):.1f}",
             " / ".join(f"{r.cpu_ms(a):.2f}" for a in APPS), f"{r.cpu_ms():.2f}",
             f"{r.spans / r.run.ok:.1f}" if r.run.ok else "–", f"{r.run.other_cores:.2f}"] for r in results]
    table = h.table(["round", "tracing", "orders/s", "p99 (ms)", "CPU ms/order: " + " / ".join(APPS),
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
    return f"""## Tracing (bench/tracing.py)

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
        f"{a} × {ratio(lambda r, a=a: r.cpu_ms(a)):.2f}" for a in APPS) + f"""), \
p99 × {ratio(lambda r: r.run.pct(99)):.2f}.
"""


def main(argv: list[str] | None = None) -> int:
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

    def body(bench: h.Bench) -> int:
        bench.header("tracing bench",
                     load=f"{args.concurrency} buyers, {args.rounds} rounds of (off, on) on {args.backend}")
        sink = Sink()
        bench.cleanups.append(sink.close)
        results = [one(args, bench, mode, n, sink) for n in range(1, args.rounds + 1) for mode in ("off", "on")]
        text = report(results, args, bench)
        print("\n" + text)
        if args.write_docs:
            h.write_section("## Tracing", text)
        bench.write_json(args, runs=[{"round": r.round, "mode": r.mode, "spans": r.spans, **r.run.summary()}
                                     for r in results])
        return 0

    return h.run(__file__, body, needs=("services.orders", "opentelemetry.proto"), target="bench-tracing",
                 keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

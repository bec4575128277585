"""Catalog reads near the gateway's floor: ``GET /api/v1/products?limit=20`` against ``GET /healthz``.

Starts, for each *stack*, a catalog (its own copy of one SQLite database, seeded as bench/gateway.py
seeds it: the demo nursery and copies of its varieties, 30 active) and a gateway in front of it:

    this       the source as it is, the listing cache on (the default)
    cache off  the same source, CATALOG_LISTING_CACHE=false: every listing read from the database
    baseline   with ``--baseline REV``: that revision's source (``git archive``), e.g. the commit before

Then, round after round, each stack in turn, loads through its gateway with wrk (the same threads and
connections, a warm-up first): ``GET /healthz`` (the gateway's own, its floor), the listing and
``GET /api/v1/provinces`` (a proxied reply of the catalog's that reads nothing). Prints req/s and the
CPU time per request of the gateway and the catalog, and per stack the ratio listing / healthz of
each round and their median. Target (issue 21.1): ≥ 0.15 for this source.

    .venv/bin/python bench/catalog_reads.py --rounds 3 --connections 16 --baseline f03d339

Needs wrk. Not part of the test suite. bench/README.md has every option; docs/performance.md the figures.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:  # run as a script: the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # first, or bench/gateway.py shadows `gateway`

from bench import harness as h  # noqa: E402
from bench.gateway import find_tool, run_wrk, seed_catalog, start_catalog, start_gateway, wait_for_list  # noqa: E402

LIST_PATH = "/api/v1/products?limit=20"
PATHS = {"healthz": "/healthz", "listing": LIST_PATH, "provinces": "/api/v1/provinces"}
TARGET = 0.15


@dataclass
class Stack:
    name: str
    gateway_url: str
    procs: h.Processes  # its gateway and catalog, for their CPU time


def parse_args(argv: list[str] | None = None):
    p = h.Options(__doc__)
    p.add_argument("--connections", "-c", type=int, default=16, help="wrk connections, the same for every run")
    p.add_argument("--threads", "-t", type=int, default=2)
    p.add_argument("--duration", "-d", type=float, default=8.0, help="seconds measured per path, stack and round")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first, each time")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--products", type=int, default=30, help="active products (the page shows 20)")
    p.add_argument("--baseline", metavar="REV", help="also a stack of this git revision's source")
    p.add_argument("--no-cache-off", action="store_true", help="leave out the stack with the cache off")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or not 1 <= args.threads <= args.connections or args.products < 20:
        p.error("--rounds ≥ 1, --duration > 0, 1 ≤ --threads ≤ --connections, --products ≥ 20")
    return args


def wrk_once(wrk: str, url: str, args, stack: Stack) -> dict:
    with h.CpuMeter(stack.procs, own=None, with_children=True) as cpu:
        out = run_wrk(wrk, url, args.threads, args.connections, args.duration, latency=False)
    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1))
    total = int(re.search(r"^\s+(\d+) requests in", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "errors": int(bad.group(1)) if bad else 0,
            "cpu_ms": {n: 1000 * s / max(total, 1) for n, s in cpu.used.items()}, "other_cores": cpu.other_cores}


def start(bench: h.Bench, name: str, db: Path, env: dict[str, str]) -> Stack:
    where = bench.tmp / name.replace(" ", "-")
    where.mkdir()
    shutil.copy(db, where / "catalog.db")
    catalog_port, gateway_port = h.free_ports(2)
    procs = h.Processes()
    catalog = start_catalog(procs, bench.python, where, catalog_port, env)
    gateway = start_gateway(procs, bench.python, where, gateway_port, f"http://127.0.0.1:{catalog_port}", env, [])
    bench.procs.children += [catalog, gateway]  # stopped with the run's own
    url = f"http://127.0.0.1:{gateway_port}"
    wait_for_list(procs, url + LIST_PATH, 20)
    return Stack(name, url, procs)


def measure_all(args, bench: h.Bench, wrk: str) -> int:
    seeded = bench.tmp / "seed" / "catalog.db"
    seeded.parent.mkdir()
    active = asyncio.run(seed_catalog(f"sqlite+aiosqlite:///{seeded}", args.products))
    env = h.base_env(CATALOG_RELAY_POLL_INTERVAL="0", CATALOG_RESERVATION_SWEEP_INTERVAL="0")
    plans = [("this", env)]
    if not args.no_cache_off:
        plans.append(("cache off", {**env, "CATALOG_LISTING_CACHE": "false"}))
    baseline = None
    if args.baseline:
        baseline = h.baseline_source(args.baseline, bench.tmp / "baseline-source")
        plans.append((f"baseline {baseline}", {**env, "PYTHONPATH": str(bench.tmp / "baseline-source")}))
    stacks = [start(bench, name, seeded, stack_env) for name, stack_env in plans]
    bench.header("catalog reads", baseline=f"{baseline} ({args.baseline})" if baseline else None, load=(
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (warm-up {args.warmup:g}s) through each "
        f"stack's gateway; {args.rounds} round(s), each stack and path in turn"), data=(
        f"{active} active products on SQLite; GET {LIST_PATH} answers 20 with their variants and photos; each app "
        "one uvicorn process, LOG_LEVEL=WARNING"))
    runs: dict[str, dict[str, list[dict]]] = {s.name: {p: [] for p in PATHS} for s in stacks}
    for round_no in range(1, args.rounds + 1):
        for stack in stacks:
            for path_name, path in PATHS.items():
                url = stack.gateway_url + path
                if args.warmup > 0:
                    run_wrk(wrk, url, args.threads, args.connections, args.warmup, latency=False)
                r = wrk_once(wrk, url, args, stack)
                runs[stack.name][path_name].append(r)
                print(f"  round {round_no} {stack.name:<16} {path_name:<9} {r['rps']:>8.0f} req/s  CPU/req: gateway "
                      f"{r['cpu_ms']['gateway']:.2f} ms, catalog {r['cpu_ms']['catalog']:.2f} ms; other processes "
                      f"{r['other_cores']:.2f} cores" + (f"  ({r['errors']} errors)" if r["errors"] else ""),
                      flush=True)
            stack.procs.check_alive()
    rows, summary = [], {}
    for stack in stacks:
        r = runs[stack.name]
        ratios = [lst["rps"] / hz["rps"] for lst, hz in zip(r["listing"], r["healthz"], strict=True)]
        med = {p: statistics.median(x["rps"] for x in r[p]) for p in PATHS}
        cpu = {n: statistics.median(x["cpu_ms"][n] for x in r["listing"]) for n in ("catalog", "gateway")}
        summary[stack.name] = {"median_rps": med, "ratios": ratios, "ratio": statistics.median(ratios),
                               "listing_cpu_ms": cpu, "errors": sum(x["errors"] for p in PATHS for x in r[p])}
        rows.append([stack.name, f"{med['healthz']:.0f}", f"{med['listing']:.0f}", f"{med['provinces']:.0f}",
                     ", ".join(f"{x:.3f}" for x in ratios), f"**{statistics.median(ratios):.3f}**",
                     f"{cpu['catalog']:.2f}", f"{cpu['gateway']:.2f}"])
    print()
    print(h.table(["stack", "healthz req/s", "listing req/s", "provinces req/s", "listing / healthz per round",
                   "median", "catalog CPU per listing (ms)", "gateway CPU per listing (ms)"], rows))
    this = summary["this"]["ratio"]
    verdict = "met" if this >= TARGET else "NOT met"
    print(f"\nlisting / healthz for this source: {this:.3f} (target ≥ {TARGET}: {verdict})")
    if any(s["errors"] for s in summary.values()):
        print("warning: non-2xx replies: " + ", ".join(f"{n} {s['errors']}" for n, s in summary.items()))
    h.write_json(args.json, {"date": h.now(), "command": bench.command, "machine": bench.info, "baseline": baseline,
                             "connections": args.connections, "threads": args.threads, "duration_s": args.duration,
                             "rounds": args.rounds, "runs": runs, "summary": summary})
    return 0 if this >= TARGET else 3


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_tool("wrk")
    if wrk is None:
        sys.stderr.write("bench/catalog_reads.py needs wrk (Debian: apt-get install -y wrk).\n")
        return 2
    return h.run(__file__, lambda bench: measure_all(args, bench, wrk), needs=("services.catalog",),
                 target="bench-catalog-reads", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

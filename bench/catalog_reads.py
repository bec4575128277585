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

    make bench-catalog-reads           # = .venv/bin/python bench/catalog_reads.py --rounds 3 --baseline f03d339
    .venv/bin/python bench/catalog_reads.py --rounds 3 --connections 16 --baseline HEAD~3

Needs wrk. Not part of the test suite. Every process it starts is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

from bench.gateway import find_tool, run_wrk, seed_catalog, start_catalog, start_gateway, wait_for_list  # noqa: E402
from bench.harness import VENV_PYTHON, BenchError, Processes, cpu_seconds, ensure_venv, free_port, machine  # noqa: E402

LIST_PATH = "/api/v1/products?limit=20"
PATHS = {"healthz": "/healthz", "listing": LIST_PATH, "provinces": "/api/v1/provinces"}
TARGET = 0.15


@dataclass
class Stack:
    name: str
    gateway_url: str
    pids: dict[str, int]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--connections", "-c", type=int, default=16)
    p.add_argument("--threads", "-t", type=int, default=2)
    p.add_argument("--duration", "-d", type=float, default=8.0, help="seconds measured per target and round")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load per target first")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--products", type=int, default=30, help="active products (the page shows 20)")
    p.add_argument("--baseline", metavar="REV", help="also a stack of this git revision's source")
    p.add_argument("--no-cache-off", action="store_true", help="leave out the stack with the cache off")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.duration <= 0 or not 1 <= args.threads <= args.connections:
        p.error("--rounds ≥ 1, --duration > 0, 1 ≤ --threads ≤ --connections")
    return args


def wrk_once(wrk: str, url: str, args: argparse.Namespace, pids: dict[str, int]) -> dict:
    before = {n: cpu_seconds(pid, with_children=True) for n, pid in pids.items()}
    out = run_wrk(wrk, url, args.threads, args.connections, args.duration, latency=False)
    used = {n: cpu_seconds(pid, with_children=True) - before[n] for n, pid in pids.items()}
    rps = float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1))
    total = int(re.search(r"^\s+(\d+) requests in", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "requests": total, "errors": int(bad.group(1)) if bad else 0,
            "cpu_ms": {n: 1000 * s / max(total, 1) for n, s in used.items()}}


def baseline_source(rev: str, into: Path) -> str:
    """``rev``'s tracked files in ``into`` (``git archive``); returns its short commit."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True,
                            check=True).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def start(procs: Processes, python: str, tmp: Path, name: str, db: Path, env: dict[str, str]) -> Stack:
    where = tmp / name.replace(" ", "-")
    where.mkdir(exist_ok=True)
    shutil.copy(db, where / "catalog.db")
    catalog_port, gateway_port = free_port(), free_port()
    catalog = start_catalog(procs, python, where, catalog_port, env)
    wait_for_list(catalog, f"http://127.0.0.1:{catalog_port}{LIST_PATH}", 20)
    gateway = start_gateway(procs, python, where, gateway_port, f"http://127.0.0.1:{catalog_port}", env, [])
    url = f"http://127.0.0.1:{gateway_port}"
    wait_for_list(gateway, url + LIST_PATH, 20)
    return Stack(name, url, {"gateway": gateway.proc.pid, "catalog": catalog.proc.pid})


def run(args: argparse.Namespace, procs: Processes, tmp: Path, python: str, wrk: str, command: str) -> dict:
    info = machine()
    seeded = tmp / "seed" / "catalog.db"
    seeded.parent.mkdir()
    active = asyncio.run(seed_catalog(f"sqlite+aiosqlite:///{seeded}", args.products))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_"))}
    base_env.update(LOG_LEVEL="WARNING", LOG_FORMAT="text", ENVIRONMENT="development", PYTHONDONTWRITEBYTECODE="1",
                    CATALOG_RELAY_POLL_INTERVAL="0", CATALOG_RESERVATION_SWEEP_INTERVAL="0",
                    PYTHONPATH=str(REPO))
    plans = [("this", base_env)]
    if not args.no_cache_off:
        plans.append(("cache off", {**base_env, "CATALOG_LISTING_CACHE": "false"}))
    baseline = None
    if args.baseline:
        baseline = baseline_source(args.baseline, tmp / "baseline-source")
        plans.append((f"baseline {baseline}", {**base_env, "PYTHONPATH": str(tmp / "baseline-source")}))
    stacks = [start(procs, python, tmp, name, seeded, env) for name, env in plans]

    print(f"Chợ Vườn catalog reads — {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"  machine : {info['cpus']} CPUs, {info['cpu_model']}, {info['kernel']}, load average before the run "
          f"{info['load_before']}")
    print(f"  source  : commit {info['source']}" + (f"; baseline {baseline} ({args.baseline})" if baseline else ""))
    print(f"  command : {command}")
    print(f"  load    : wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s (warm-up {args.warmup:g}s) "
          f"through each stack's gateway; {args.rounds} round(s), each stack and path in turn")
    print(f"  data    : {active} active products on SQLite; GET {LIST_PATH} answers 20 with their variants and "
          "photos; every app one uvicorn process, LOG_LEVEL=WARNING", flush=True)
    runs: dict[str, dict[str, list[dict]]] = {s.name: {p: [] for p in PATHS} for s in stacks}
    for round_no in range(1, args.rounds + 1):
        for stack in stacks:
            for path_name, path in PATHS.items():
                url = stack.gateway_url + path
                if args.warmup > 0:
                    run_wrk(wrk, url, args.threads, args.connections, args.warmup, latency=False)
                result = wrk_once(wrk, url, args, stack.pids)
                runs[stack.name][path_name].append(result)
                print(f"  round {round_no} {stack.name:<16} {path_name:<9} {result['rps']:>8.0f} req/s  CPU/req: "
                      f"gateway {result['cpu_ms']['gateway']:.2f} ms, catalog {result['cpu_ms']['catalog']:.2f} ms"
                      + (f"  ({result['errors']} errors)" if result["errors"] else ""), flush=True)
            procs.check_alive()
    print()
    print("| stack | healthz req/s | listing req/s | provinces req/s | listing / healthz (per round) | median | "
          "catalog CPU per listing (ms) | gateway CPU per listing (ms) |")
    print("| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    summary = {}
    for stack in stacks:
        r = runs[stack.name]
        ratios = [lst["rps"] / h["rps"] for lst, h in zip(r["listing"], r["healthz"], strict=True)]
        med = {p: statistics.median(x["rps"] for x in r[p]) for p in PATHS}
        cpu = {n: statistics.median(x["cpu_ms"][n] for x in r["listing"]) for n in ("catalog", "gateway")}
        summary[stack.name] = {"median_rps": med, "ratios": ratios, "ratio": statistics.median(ratios),
                               "listing_cpu_ms": cpu, "errors": sum(x["errors"] for p in PATHS for x in r[p])}
        print(f"| {stack.name} | {med['healthz']:.0f} | {med['listing']:.0f} | {med['provinces']:.0f} | "
              + ", ".join(f"{x:.3f}" for x in ratios) + f" | **{statistics.median(ratios):.3f}** | "
              f"{cpu['catalog']:.2f} | {cpu['gateway']:.2f} |")
    this = summary["this"]["ratio"]
    print(f"\nlisting / healthz for this source: {this:.3f} (target ≥ {TARGET}: {'met' if this >= TARGET else 'NOT met'})")
    errors = sum(s["errors"] for s in summary.values())
    if errors:
        print(f"warning: {errors} non-2xx replies")
    result = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command,
              "machine": info, "baseline": baseline, "connections": args.connections, "threads": args.threads,
              "duration_s": args.duration, "rounds": args.rounds, "runs": runs, "summary": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = find_tool("wrk")
    if wrk is None:
        sys.stderr.write("bench/catalog_reads.py needs wrk (Debian: apt-get install -y wrk).\n")
        return 2
    ensure_venv(__file__, "services.catalog", target="bench-catalog-reads")
    python = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, REPO),
                                                 os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="bench-catalog-reads-"))
    procs = Processes()
    started = time.monotonic()
    try:
        result = run(args, procs, tmp, python, wrk, command)
        print(f"({time.monotonic() - started:.0f} s)")
        return 0 if result["summary"]["this"]["ratio"] >= TARGET else 3
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started …", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench/catalog_reads.py: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

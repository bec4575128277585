"""What does the gateway add to a request? One run, three paths, the same load.

A catalog on SQLite, the gateway and nginx in front of it, loaded with wrk in turn (as fast as they go,
then paced): req/s, p50/p99, the ratios gateway/nginx and gateway/direct, the p99 the gateway adds and
CPU per request. Targets: gateway ≥ 0.8 × nginx's req/s; p99 added ≤ 3 ms. Needs wrk and nginx.
``--catalog-reads``: the listing's req/s over the gateway's own /healthz's, per stack (target ≥ 0.15).

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # the repository first, or bench/gateway.py shadows `gateway`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import harness as h  # noqa: E402

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"
STATIC_TEMPLATE = Path(__file__).resolve().parent / "nginx-static.conf.template"
PACE_TEMPLATE = Path(__file__).resolve().parent / "pace.lua.template"
LIST_PATH = "/api/v1/products?limit=20"
TARGETS = ("direct", "gateway", "nginx")
READ_PATHS = {"healthz": "/healthz", "listing": LIST_PATH, "provinces": "/api/v1/provinces"}  # --catalog-reads
READS_TARGET = 0.15  # listing / healthz req/s
PRODUCTS, NGINX_KEEPALIVE = 30, 64  # active products in the catalog; idle upstream connections nginx keeps


async def seed_catalog(database_url: str, products: int) -> int:
    """The demo nursery (``services.catalog.seed``), then copies of its varieties and their variants,
    column by column (prices, stock, search documents as the seed wrote them), until ``products`` are active."""
    from sqlalchemy import func, inspect, select

    from common.db import Database
    from services.catalog.app import MIGRATIONS
    from services.catalog.products.models import Product, ProductStatus
    from services.catalog.seed import seed
    from services.catalog.settings import CatalogSettings

    def copy_of(row: object, skip: set[str], **changes: object) -> object:
        cls = type(row)
        values = {attr.key: getattr(row, attr.key) for attr in inspect(cls).column_attrs if attr.key not in skip}
        return cls(**{**values, **changes})

    def count_active() -> object:
        return select(func.count()).select_from(Product).where(Product.status == ProductStatus.active)

    await seed(CatalogSettings(database_url=database_url))
    db = Database(database_url, MIGRATIONS)
    try:
        async with db.sessionmaker() as session, session.begin():
            originals = (await session.scalars(select(Product).where(Product.status == ProductStatus.active)
                                               .order_by(Product.id))).all()
            if not originals:
                raise h.BenchError("services.catalog.seed made no active product to copy")
            missing = products - await session.scalar(count_active())
            for i in range(max(0, missing)):
                original = originals[i % len(originals)]
                product = copy_of(original, {"id", "created_at", "updated_at"}, name=f"{original.name} (lô {i + 1})")
                product.variants = [copy_of(v, {"id", "product_id"}) for v in original.variants]
                session.add(product)
            await session.flush()
            return await session.scalar(count_active())
    finally:
        await db.dispose()


def wait_for_list(procs: h.Processes, url: str) -> bytes:
    """Poll ``url`` until it answers 200 with 20 items; returns the body."""
    return h.wait_ready(procs, url, 300.0, lambda body: None if len(json.loads(body)["items"]) == 20 else "not 20")


def fill(template: Path, **values: object) -> str:
    """``template``'s text with its ``{{name}}`` placeholders filled in (each must be)."""
    text = template.read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", str(value))
    if m := re.search(r"{{.*?}}", text):
        raise h.BenchError(f"unfilled placeholder in {template}: {m.group(0)}")
    return text


def start_nginx(procs: h.Processes, nginx: str, name: str, template: Path, prefix: Path, **values: object) -> h.Child:
    """nginx from ``template`` (its ``{{name}}`` placeholders filled in), in the foreground, in ``prefix``."""
    prefix.mkdir(parents=True, exist_ok=True)
    (conf := prefix / "nginx.conf").write_text(fill(template, prefix=prefix, **values))
    return procs.start(name, [nginx, "-p", str(prefix), "-e", str(prefix / "nginx-error.log"), "-c", str(conf)],
                       {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}, prefix / "nginx.log")


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str = ""
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per request of each process during the run
    other_cores: float = 0.0  # cores kept busy meanwhile by processes this bench did not start
    # Gateway runs, by its gateway_added_seconds histogram: the p99 it added, the share within 3 ms.
    own_p99_ms: float | None = None
    own_within_3ms: float | None = None


ADDED_BUCKET = re.compile(r'^gateway_added_seconds_bucket\{(?=[^}]*upstream="catalog")[^}]*le="([^"]+)"[^}]*\} (\S+)$',
                          re.M)


def added_buckets(metrics: tuple[str, str]) -> dict[float, float]:
    """The gateway's own-latency histogram, from its /metrics (``metrics``: the URL and the credential)."""
    request = urllib.request.Request(metrics[0], headers={"Authorization": f"Bearer {metrics[1]}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return {float(le): float(count) for le, count in ADDED_BUCKET.findall(resp.read().decode())}


def own_latency(before: dict[float, float], after: dict[float, float]) -> tuple[float | None, float | None]:
    """(p99 in ms, share ≤ 3 ms) of the requests observed between two scrapes of the histogram."""
    cumulative = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    total = cumulative[-1][1] if cumulative else 0.0
    if total <= 0:
        return None, None
    within = next((c for le, c in cumulative if le >= 0.003), total) / total
    rank, lower, below = 0.99 * total, 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if le == float("inf"):
                return lower * 1000, within
            return 1000 * (lower + (le - lower) * (rank - below) / max(count - below, 1e-9)), within
        lower, below = le, count
    return None, within


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip()).groups()
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def parse_wrk(output: str) -> Result:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    if not (rps and p50 and p99 and total):
        raise h.BenchError(f"could not read wrk's output:\n{output}")
    errors = []
    if m := re.search(r"^\s+Socket errors: (.*)$", output, re.M):
        errors.append("socket errors: " + m.group(1).strip())
    if m := re.search(r"^\s+Non-2xx or 3xx responses: (\d+)", output, re.M):
        errors.append(f"{m.group(1)} non-2xx responses")
    return Result(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)), int(total.group(1)), "; ".join(errors))


def pacing_script(directory: Path, connections: int, rate: float) -> Path:
    """A wrk script that paces every connection so that together they offer ``rate`` requests/s:
    load below what the upstream can serve, where latency is the service's and the proxy's own, not
    the queue's."""
    mean_ms = 1000.0 * connections / rate
    path = directory / f"pace-{rate:g}.lua"
    path.write_text(fill(PACE_TEMPLATE, mean_ms=f"{mean_ms:.1f}", connections=connections, rate=f"{rate:g}",
                         twice_ms=max(1, round(2 * mean_ms))))
    return path


def run_wrk(wrk: str, url: str, threads: int, connections: int, seconds: float, latency: bool,
            script: Path | None = None) -> str:
    argv = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s",
            *(["--latency"] if latency else []), *(["-s", str(script)] if script else [])]
    out = subprocess.run([*argv, url], capture_output=True, text=True)
    if out.returncode != 0:
        raise h.BenchError(f"{' '.join(argv)} {url} failed ({out.returncode}):\n{out.stdout}{out.stderr}")
    return out.stdout


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__, env="--gateway-env", quiet=0.15, serve=True)
    p.add_argument("--connections", "-c", type=int, default=32, help="wrk connections, the same for each target")
    p.add_argument("--threads", "-t", type=int, default=2, help="wrk threads, the same for each target")
    p.add_argument("--duration", "-d", type=float, default=10.0, help="seconds measured per target and round")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load per target first")
    p.add_argument("--rounds", type=int, default=1, help="direct, gateway, nginx in turn this many times; medians")
    p.add_argument("--load", type=float, default=0.5, help="the latency phase offers this share of the direct "
                   "path's req/s from the throughput phase (0: skip it)")
    p.add_argument("--retries", type=int, default=2, help="measure a disturbed run again up to this many times")
    p.add_argument("--upstream", choices=("catalog", "static"), default="catalog",
                   help="static: nginx serves a snapshot of the catalog's page in its place (the proxies' cost)")
    p.add_argument("--catalog-reads", action="store_true", help="the listing against the gateway's /healthz, "
                   "per stack (this source, its listing cache off, --baseline), instead of the gateway against nginx")
    p.add_argument("--baseline", metavar="REV", help="--catalog-reads: also a stack of this git revision's source")
    args = p.parse_args(argv)
    if not 1 <= args.threads <= args.connections or not 0 <= args.load < 1 or args.rounds < 1 or args.duration <= 0:
        p.error("1 ≤ --threads ≤ --connections, 0 ≤ --load < 1, --rounds ≥ 1, --duration > 0")
    return args


def start_catalog(procs: h.Processes, python: str, tmp: Path, port: int, env: dict[str, str]) -> h.Child:
    return procs.start("catalog", [python, "-m", "services.catalog", "serve", "--port", str(port)],
                       {"CATALOG_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/catalog.db", **env,
                        "CATALOG_HOST": "127.0.0.1"}, tmp / "catalog.log")


def start_gateway(procs: h.Processes, python: str, tmp: Path, port: int, upstream: str,
                  env: dict[str, str], extra: list[str]) -> h.Child:
    return procs.start("gateway", [python, "-m", "gateway", "serve", "--port", str(port)],
                       {**env, "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/gateway.db",
                        "GATEWAY_HOST": "127.0.0.1", "GATEWAY_CATALOG_URL": upstream,
                        # Not called by this bench; nothing answers on the discard port.
                        "GATEWAY_ORDERS_URL": "http://127.0.0.1:9", "GATEWAY_NOTIFY_URL": "http://127.0.0.1:9",
                        **h.env_pairs(extra)}, tmp / "gateway.log")


def measure_once(args: argparse.Namespace, wrk: str, procs: h.Processes, url: str,
                 script: Path | None = None, metrics: tuple[str, str] | None = None) -> Result:
    """One measured wrk run, with the CPU time each of our processes spent and what others took
    (and, given the gateway's ``metrics``, what it added to each request by its own account)."""
    buckets = added_buckets(metrics) if metrics else None
    with h.CpuMeter(procs, own="wrk", with_children=True) as cpu:
        result = parse_wrk(run_wrk(wrk, url, args.threads, args.connections, args.duration, latency=True,
                                   script=script))
    result.cpu_ms = {name: 1000 * sec / max(result.requests, 1) for name, sec in cpu.used.items()}
    result.other_cores = cpu.other_cores
    if metrics:
        result.own_p99_ms, result.own_within_3ms = own_latency(buckets, added_buckets(metrics))
    return result


def measure(args: argparse.Namespace, wrk: str, procs: h.Processes, urls: dict[str, str],
            script: Path | None = None, metrics: tuple[str, str] | None = None,
            meters: dict[str, h.Processes] | None = None) -> dict[str, list[Result]]:
    """``--rounds`` rounds of the ``urls`` (direct, gateway, nginx) in turn (so each round's runs are close
    in time and can be compared pairwise); with ``script``, paced by it. ``meters``: per target, the
    processes whose CPU time is read (all of ``procs`` when not given)."""
    runs: dict[str, list[Result]] = {t: [] for t in urls}
    width = max(map(len, urls))

    def settle(warmup: float) -> None:
        if args.wait_quiet > 0:
            h.wait_quiet(procs, args.wait_quiet, args.max_other_cores, own=None, with_children=True)
        if warmup > 0:
            run_wrk(wrk, urls[target], args.threads, args.connections, warmup, latency=False, script=script)

    for round_no in range(1, args.rounds + 1):
        for target in urls:
            settle(args.warmup)
            scrape = metrics if target == "gateway" else None
            meter = meters[target] if meters else procs
            result = measure_once(args, wrk, meter, urls[target], script, scrape)
            # Another job on the machine took CPU meanwhile: measure again, keep the quietest.
            for _ in range(args.retries):
                if result.other_cores <= args.max_other_cores:
                    break
                print(f"  round {round_no}/{args.rounds} {target:<{width}} disturbed (other processes "
                      f"{result.other_cores:.2f} cores), again", flush=True)
                settle(min(args.warmup, 1.0) if args.wait_quiet > 0 else 0)
                again = measure_once(args, wrk, meter, urls[target], script, scrape)
                result = again if again.other_cores < result.other_cores else result
            runs[target].append(result)
            print(f"  round {round_no}/{args.rounds} {target:<{width}} {result.rps:>8.0f} req/s  "
                  f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  CPU/request: "
                  + ", ".join(f"{n} {ms:.2f} ms" for n, ms in result.cpu_ms.items() if ms >= 0.005)
                  + f"; other processes {result.other_cores:.2f} cores"
                  + (f"; gateway's own p99 {result.own_p99_ms:.2f} ms" if result.own_p99_ms is not None else "")
                  + (f"  ({result.errors})" if result.errors else ""), flush=True)
        procs.check_alive()
    return runs


def medians(runs: dict[str, list[Result]]) -> dict[str, Result]:
    return {t: Result(statistics.median(r.rps for r in rs), statistics.median(r.p50_ms for r in rs),
                      statistics.median(r.p99_ms for r in rs), sum(r.requests for r in rs),
                      "; ".join(r.errors for r in rs if r.errors),
                      {n: statistics.median(r.cpu_ms.get(n, 0.0) for r in rs) for n in rs[0].cpu_ms},
                      max(r.other_cores for r in rs)) for t, rs in runs.items()}


def paired(runs: dict[str, list[Result]], target: str, key: str) -> list[float]:
    """``target`` minus direct, round by round: runs next to each other in time, so what drifts
    slowly on the machine (the catalog's speed between turns) cancels out."""
    return [getattr(t, key) - getattr(d, key) for t, d in zip(runs[target], runs["direct"], strict=True)]


def report(args: argparse.Namespace, runs: dict[str, list[Result]], upstream: str, rate: float | None) -> dict:
    """Print one phase's table and figures. ``rate`` None: the throughput phase (connections as fast
    as they go; judged on req/s); else the latency phase, paced at ``rate`` (judged on the p99 added)."""
    med, proxy_of = medians(runs), {"direct": None, "gateway": "gateway", "nginx": "nginx"}
    print(f"\n{f'median of {args.rounds} rounds' if args.rounds > 1 else 'one round'}; {args.connections} connections "
          + ("as fast as they go" if rate is None else f"paced to ≈ {rate:.0f} req/s in all")
          + f", {args.threads} wrk threads, {args.duration:g} s per target; CPU/req = CPU time of that process "
          "during the run / requests served\n")
    print(h.table(["target", "req/s", "p50 (ms)", "p99 (ms)", f"{upstream} CPU/req (ms)", "proxy CPU/req (ms)",
                   "wrk CPU/req (ms)"],
                  [[t, f"{r.rps:.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", f"{r.cpu_ms.get(upstream, 0.0):.2f}",
                    f"{r.cpu_ms.get(proxy_of[t], 0.0):.2f}" if proxy_of[t] else "–", f"{r.cpu_ms.get('wrk', 0.0):.2f}"]
                   for t, r in med.items()]))
    g, d, n = med["gateway"], med["direct"], med["nginx"]
    vs_nginx, vs_direct = g.rps / n.rps, g.rps / d.rps
    added = {t: paired(runs, t, "p99_ms") for t in ("gateway", "nginx")}
    added_p50 = statistics.median(paired(runs, "gateway", "p50_ms"))
    added_p99, nginx_added_p99 = statistics.median(added["gateway"]), statistics.median(added["nginx"])
    own = [r.own_p99_ms for r in runs["gateway"] if r.own_p99_ms is not None]
    own_p99 = statistics.median(own) if own else None
    own_within = statistics.median(r.own_within_3ms for r in runs["gateway"] if r.own_within_3ms is not None) \
        if own else None
    lines = ([f"gateway/nginx  req/s = {vs_nginx:.2f}   (target ≥ 0.80: {'met' if vs_nginx >= 0.8 else 'NOT met'})",
              f"gateway/direct req/s = {vs_direct:.2f}"] if rate is None else
             [f"offered ≈ {rate:.0f} req/s; served: direct {d.rps:.0f}, gateway {g.rps:.0f}, nginx {n.rps:.0f}"])
    if own_p99 is not None:
        lines.append(f"p99 added by gateway, per request by its own account (gateway_added_seconds: its handling "
                     f"minus the {upstream}'s part) = {own_p99:.2f} ms"
                     + (f" (per round {', '.join(f'{x:.2f}' for x in own)})" if len(own) > 1 else "")
                     + f"; {100 * own_within:.1f} % of requests within 3 ms"
                     + (f"   (target ≤ 3 ms: {'met' if own_p99 <= 3.0 else 'NOT met'})" if rate is not None else ""))
    lines += [f"p99 gateway − p99 direct, same round (median) = {added_p99:+.2f} ms"
              + (f" (per round {', '.join(f'{x:+.1f}' for x in added['gateway'])})" if args.rounds > 1 else "")
              + (f": the {upstream}'s queue, not the gateway" if rate is None else
                 f": whole latencies, so the {upstream}'s variation between runs is in it"),
              f"p50 added by gateway = {added_p50:+.2f} ms;  p99 added by nginx = {nginx_added_p99:+.2f} ms"]
    gw_cpu, ngx_cpu = g.cpu_ms.get("gateway", 0.0), n.cpu_ms.get("nginx", 0.0)
    if gw_cpu and ngx_cpu:
        lines.append(f"proxy CPU per request: gateway {gw_cpu:.2f} ms, nginx {ngx_cpu:.2f} ms "
                     f"({gw_cpu / ngx_cpu:.0f}×); the {upstream} itself {d.cpu_ms.get(upstream, 0.0):.2f} ms")
    lines += [f"note: in the {t} run the {name} used {cores:.2f} of a core: it is the bottleneck there."
              for t in TARGETS for name in (upstream, proxy_of[t]) if name
              and (cores := med[t].cpu_ms.get(name, 0.0) * med[t].rps / 1000) >= 0.85]
    if (other := max(r.other_cores for rs in runs.values() for r in rs)) > args.max_other_cores:
        lines.append(f"warning: other processes kept up to {other:.2f} cores busy during the runs; "
                     "the figures are disturbed, run again on a quiet machine.")
    if errors := {t: r.errors for t, r in med.items() if r.errors}:
        lines.append("errors: " + "; ".join(f"{t}: {e}" for t, e in errors.items()))
    print("\n" + "\n".join(lines))
    return {"median": med, "gateway_over_nginx": vs_nginx,
            "gateway_over_direct": vs_direct, "p99_added_by_gateway_ms": added_p99,
            "p99_added_by_gateway_per_round_ms": added["gateway"],
            "p50_added_by_gateway_ms": added_p50, "p99_added_by_nginx_ms": nginx_added_p99,
            "gateway_own_p99_ms": own_p99, "gateway_own_within_3ms": own_within, "offered_rate": rate}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # nginx lives in /usr/sbin, which is not on an ordinary user's PATH.
    wrk, nginx = (shutil.which(n) or shutil.which(n, path="/usr/local/sbin:/usr/sbin:/sbin") for n in ("wrk", "nginx"))
    if args.catalog_reads and wrk:
        return h.run(__file__, lambda bench: catalog_reads(args, bench, wrk), needs=("services.catalog",),
                     target="bench-catalog-reads", keep=args.keep)
    if not (wrk and nginx):
        sys.stderr.write("bench/gateway.py needs wrk and nginx on the PATH (Debian: apt-get install -y wrk "
                         "nginx-light; nginx runs only from a temporary directory, never as a service).\n")
        return 2
    return h.run(__file__, lambda bench: measure_all(args, bench, wrk, nginx), needs=("services.catalog",),
                 target="bench-gateway", keep=args.keep)


def measure_all(args: argparse.Namespace, bench: h.Bench, wrk: str, nginx: str) -> int:
    procs, python, tmp = bench.procs, bench.python, bench.tmp
    tmp.chmod(0o755)  # nginx's worker runs as an unprivileged user when started by root; let it reach its files
    active = asyncio.run(seed_catalog(f"sqlite+aiosqlite:///{tmp}/catalog.db", PRODUCTS))
    ports = dict(zip(TARGETS, h.free_ports(3), strict=True))
    urls = {name: f"http://127.0.0.1:{port}{LIST_PATH}" for name, port in ports.items()}
    token = f"bench-{os.urandom(16).hex()}"  # the gateway's /metrics wants the metrics credential
    env = h.base_env(METRICS_TOKEN=token)
    if args.upstream == "catalog":
        upstream = start_catalog(procs, python, tmp, ports["direct"], env)
        upstream_desc = "the catalog, 1 uvicorn process (SQLite)"
    else:
        # Take the catalog's real page once, then serve it from nginx in the catalog's place.
        (snapshot_port,) = h.free_ports(1)
        start_catalog(procs, python, tmp, snapshot_port, env)
        page = wait_for_list(procs, f"http://127.0.0.1:{snapshot_port}{LIST_PATH}")
        procs.stop_all()
        (tmp / "static").mkdir()
        (tmp / "static" / "products.json").write_bytes(page)
        (tmp / "static").chmod(0o755)
        upstream = start_nginx(procs, nginx, "static", STATIC_TEMPLATE, tmp / "static", listen_port=ports["direct"])
        upstream_desc = "nginx serving a snapshot of the catalog's page (1 worker): proxies' cost only"
    bodies = {"direct": wait_for_list(procs, urls["direct"])}
    start_gateway(procs, python, tmp, ports["gateway"], f"http://127.0.0.1:{ports['direct']}", env, args.gateway_env)
    start_nginx(procs, nginx, "nginx", TEMPLATE, tmp / "nginx", listen_port=ports["nginx"],
                upstream_port=ports["direct"], keepalive=NGINX_KEEPALIVE)
    bodies["gateway"] = wait_for_list(procs, urls["gateway"])
    bodies["nginx"] = wait_for_list(procs, urls["nginx"])
    if args.serve:
        procs.serve_forever({"catalog": urls["direct"], "static": urls["direct"], **urls})
    bench.info.update(wrk=h.tool_version([wrk, "-v"]).split(" Copyright")[0], nginx=h.tool_version([nginx, "-v"]))
    bench.header("gateway bench", software=f"{bench.info['nginx']}, {bench.info['wrk']}", upstream=upstream_desc,
                 request=f"GET {LIST_PATH} → 20 of {active} active products, {len(bodies['direct'])} B of JSON",
                 warning=None if len(set(bodies.values())) == 1 else "the three targets answer different bodies: "
                 + ", ".join(f"{t} {len(b)} B" for t, b in bodies.items()))
    print("Throughput: every connection sends its next request as soon as the reply is in", flush=True)
    metrics = (f"http://127.0.0.1:{ports['gateway']}/metrics", token)
    runs = measure(args, wrk, procs, urls, metrics=metrics)
    phases = {"throughput": {"runs": runs, **report(args, runs, upstream.name, None)}}
    if args.load > 0:
        rate = args.load * medians(runs)["direct"].rps
        print(f"\nLatency: the same connections, paced to {args.load:g} × the direct req/s above "
              f"(≈ {rate:.0f} req/s in all)", flush=True)
        paced = measure(args, wrk, procs, urls, pacing_script(tmp, args.connections, rate), metrics)
        phases["latency"] = {"runs": paced, **report(args, paced, upstream.name, rate)}
    bench.write_json(args, response_bytes=len(bodies["direct"]), **phases)
    return 0


def catalog_reads(args: argparse.Namespace, bench: h.Bench, wrk: str) -> int:
    """``--catalog-reads``: per stack, the listing's req/s over the gateway's own ``/healthz``'s, round by round."""
    seeded = bench.tmp / "seed" / "catalog.db"
    seeded.parent.mkdir()
    active = asyncio.run(seed_catalog(f"sqlite+aiosqlite:///{seeded}", PRODUCTS))
    env = h.base_env(CATALOG_RELAY_POLL_INTERVAL="0", CATALOG_RESERVATION_SWEEP_INTERVAL="0")
    plans = {"this": env, "cache off": {**env, "CATALOG_LISTING_CACHE": "false"}}
    baseline = None
    if args.baseline:
        baseline = h.baseline_source(args.baseline, bench.tmp / "baseline-source")
        plans[f"baseline {baseline}"] = {**env, "PYTHONPATH": str(bench.tmp / "baseline-source")}
    urls, meters = {}, {}
    for name, stack_env in plans.items():  # a catalog on its own copy of the database, a gateway in front
        where = bench.tmp / name.replace(" ", "-")
        where.mkdir()
        if "PYTHONPATH" in stack_env:  # its own schema: seeded by its own code
            subprocess.run([bench.python, "-c", "import asyncio, sys; from bench.gateway import seed_catalog; "
                            "asyncio.run(seed_catalog(sys.argv[1], int(sys.argv[2])))",
                            f"sqlite+aiosqlite:///{where}/catalog.db", str(PRODUCTS)],
                           env={**os.environ, **stack_env}, cwd=stack_env["PYTHONPATH"], check=True)
        else:
            shutil.copy(seeded, where / "catalog.db")
        catalog_port, gateway_port = h.free_ports(2)
        procs = h.Processes()  # this stack's, for their CPU time; stopped with the run's own
        bench.procs.children.append(start_catalog(procs, bench.python, where, catalog_port, stack_env))
        bench.procs.children.append(start_gateway(procs, bench.python, where, gateway_port,
                                                  f"http://127.0.0.1:{catalog_port}", stack_env, []))
        wait_for_list(procs, f"http://127.0.0.1:{gateway_port}{LIST_PATH}")
        for path_name, path in READ_PATHS.items():
            urls[f"{name}: {path_name}"] = f"http://127.0.0.1:{gateway_port}{path}"
            meters[f"{name}: {path_name}"] = procs
    bench.header("catalog reads", baseline=f"{baseline} ({args.baseline})" if baseline else None,
                 data=f"{active} active products on SQLite; GET {LIST_PATH} answers 20")
    runs = measure(args, wrk, bench.procs, urls, meters=meters)
    rows, summary = [], {}
    for name in plans:
        r = {p: runs[f"{name}: {p}"] for p in READ_PATHS}
        ratios = [lst.rps / hz.rps for lst, hz in zip(r["listing"], r["healthz"], strict=True)]
        med = {p: statistics.median(x.rps for x in r[p]) for p in READ_PATHS}
        cpu = {n: statistics.median(x.cpu_ms.get(n, 0.0) for x in r["listing"]) for n in ("catalog", "gateway")}
        errors = "; ".join(x.errors for p in READ_PATHS for x in r[p] if x.errors)
        summary[name] = {"median_rps": med, "ratios": ratios, "ratio": statistics.median(ratios),
                         "listing_cpu_ms": cpu, "errors": errors}
        rows.append([name, f"{med['healthz']:.0f}", f"{med['listing']:.0f}", f"{med['provinces']:.0f}",
                     ", ".join(f"{x:.3f}" for x in ratios), f"**{statistics.median(ratios):.3f}**",
                     f"{cpu['catalog']:.2f}", f"{cpu['gateway']:.2f}"])
    print()
    print(h.table(["stack", "healthz req/s", "listing req/s", "provinces req/s", "listing / healthz per round",
                   "median", "catalog CPU per listing (ms)", "gateway CPU per listing (ms)"], rows))
    this = summary["this"]["ratio"]
    print(f"\nlisting / healthz for this source: {this:.3f} (target ≥ {READS_TARGET}: "
          f"{'met' if this >= READS_TARGET else 'NOT met'})")
    if errors := {n: s["errors"] for n, s in summary.items() if s["errors"]}:
        print("errors: " + "; ".join(f"{n}: {e}" for n, e in errors.items()))
    bench.write_json(args, baseline=baseline, runs=runs,
                     summary=summary)
    return 0 if this >= READS_TARGET else 3


if __name__ == "__main__":
    sys.exit(main())

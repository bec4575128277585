"""How soon does a grower's shop page show on a phone over slow 4G? And Lighthouse's scores (``--lighthouse``).

The four apps and a shop of ``--products`` varieties with photos; Chromium (Playwright) opens ``/s/{slug}``
as a phone with a cold cache, unthrottled and on DevTools' "Slow 4G": FCP, LCP, DOMContentLoaded, load,
bytes, and the slow-4G/unthrottled ratios; ``--baseline REV`` beside a stack of that revision's source, in
turn. Targets: FCP ≤ 0.8 s, LCP ≤ 2.5 s on slow 4G. ``--lighthouse``: Lighthouse's four scores (each ≥ 95)
for the home, shop, product, cart and tracking pages on the demo seed instead.

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

if __name__ == "__main__":  # the repository first, or bench/gateway.py shadows `gateway`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import harness as h  # noqa: E402

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True,
         "locale": "vi-VN", "timezone_id": "Asia/Ho_Chi_Minh"}
FCP_TARGET_MS, LCP_TARGET_MS = 800.0, 2500.0


@dataclass(frozen=True)
class Network:
    name: str
    latency_ms: float = 0.0
    down_bytes_s: float = -1.0  # -1: not throttled (the DevTools protocol's convention)
    up_bytes_s: float = -1.0


# Chrome DevTools' "Slow 4G" preset (devtools-frontend, NetworkManager: Slow4GConditions).
SLOW_4G = Network("slow 4G", latency_ms=150 * 3.75, down_bytes_s=1.6e6 / 8 * 0.9, up_bytes_s=750e3 / 8 * 0.9)
UNTHROTTLED = Network("unthrottled")
CONDITIONS = (UNTHROTTLED, SLOW_4G)
NETWORKS = (f"slow 4G: {SLOW_4G.latency_ms:g} ms latency per request, {SLOW_4G.down_bytes_s * 8 / 1e6:.2f} Mbit/s "
            f"down, {SLOW_4G.up_bytes_s * 8 / 1e3:.0f} kbit/s up (Chrome DevTools' preset), and unthrottled (loopback)")


async def seed_shop(gateway_url: str, products: int) -> tuple[str, int]:
    """A grower's shop of ``products`` varieties, each with a photo (bench/load.py's seeding); (its path, the
    JPEG bytes uploaded)."""
    import httpx

    from bench.load import seed

    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as gw:
        world = await seed(gw, argparse.Namespace(growers=1, products=products, photos=products), random.Random(7))
        shop = h.expect(await gw.get(f"/api/v1/shops/{world.shop_ids[0]}"), 200, "the shop")
    return "/" + shop["url"].split("/", 3)[3], world.photo_bytes


@dataclass
class Load:
    stack: str  # "this", or "baseline <commit>"
    network: str
    fcp_ms: float | None
    lcp_ms: float | None
    dcl_ms: float
    load_ms: float
    bytes: int
    requests: int
    failed: list[str] = field(default_factory=list)


METRICS_JS = (Path(__file__).resolve().parent / "page_metrics.js").read_text().split("\n", 2)[2]


async def load_once(browser, stack: str, url: str, network: Network) -> Load:
    context = await browser.new_context(**PHONE)  # a new context: an empty cache and no open connection
    try:
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        if network.latency_ms:
            await cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": network.latency_ms, "downloadThroughput": network.down_bytes_s,
                "uploadThroughput": network.up_bytes_s, "connectionType": "cellular4g"})
        wire: dict[str, int] = {}
        failed: list[str] = []
        urls: dict[str, str] = {}
        cdp.on("Network.requestWillBeSent", lambda e: urls.__setitem__(e["requestId"], e["request"]["url"]))
        cdp.on("Network.loadingFinished", lambda e: wire.__setitem__(e["requestId"], int(e["encodedDataLength"])))
        cdp.on("Network.responseReceived", lambda e: failed.append(f"{e['response']['status']} {e['response']['url']}")
               if e["response"]["status"] >= 400 else None)
        cdp.on("Network.loadingFailed", lambda e: failed.append(f"{e.get('errorText')} {urls.get(e['requestId'])}"))
        reply = await page.goto(url, wait_until="load", timeout=120_000)
        if reply is None or reply.status != 200:
            raise h.BenchError(f"GET {url}: {reply.status if reply else 'no reply'}")
        # Lazy photos do not hold back the load event: wait until the network has been quiet for
        # 0.5 s, so that the bytes count every photo the first screen shows and LCP has seen them.
        await page.wait_for_load_state("networkidle", timeout=120_000)
        m = await page.evaluate(METRICS_JS)
        return Load(stack, network.name, m["fcp"], m["lcp"], m["dcl"], m["load"], sum(wire.values()), len(wire),
                    failed)
    finally:
        await context.close()


def chromium_version() -> str:
    return h.tool_version([str(CHROMIUM), "--version"]).split(" built on")[0]


def start_stack(bench, *, demo_seed: bool = False, source: Path | None = None) -> dict[str, str]:
    """The four apps on SQLite files in the run's directory (``demo_seed``: the demo nursery first;
    ``source``: another revision's files, in a directory of their own)."""
    run_dir = bench.tmp / "baseline" if source else bench.tmp
    run_dir.mkdir(exist_ok=True)
    dbs = h.Databases("sqlite", run_dir)
    return h.start_apps(bench.procs, bench.python, run_dir, dbs.urls, demo_seed=demo_seed,
                        env={"PYTHONPATH": str(source)} if source else None)


async def measure(args: argparse.Namespace, urls: dict[str, str]) -> list[Load]:
    """``--runs`` rounds; in each, every stack (``urls``: its page) on every network in turn, so that
    a disturbance touches them all alike."""
    from playwright.async_api import async_playwright

    loads: list[Load] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # One unmeasured load first: the apps' first request pays for imports and caches, not the page.
            for stack, url in urls.items():
                await load_once(browser, stack, url, UNTHROTTLED)
            for run in range(1, args.runs + 1):
                for (stack, url), network in itertools.product(urls.items(), CONDITIONS):
                    result = await load_once(browser, stack, url, network)
                    loads.append(result)
                    print(f"  run {run}/{args.runs} {label(stack, network.name, len(urls)):<30}  "
                          f"FCP {fmt_ms(result.fcp_ms)}  LCP {fmt_ms(result.lcp_ms)}  "
                          f"DOMContentLoaded {fmt_ms(result.dcl_ms)}  load {fmt_ms(result.load_ms)}  "
                          f"{result.bytes / 1024:7.1f} KiB in {result.requests} requests"
                          + (f"  FAILED: {'; '.join(result.failed)}" if result.failed else ""), flush=True)
        finally:
            await browser.close()
    return loads


def fmt_ms(ms: float | None) -> str:
    return "     –  " if ms is None else f"{ms:6.0f} ms"


def label(stack: str, network: str, stacks: int) -> str:
    """A row's name: the network alone when there is one stack."""
    return network if stacks == 1 else f"{stack}, {network}"


def summary(loads: list[Load]) -> dict[str, dict[str, dict[str, float | None]]]:
    """Per stack and network (``label``) and figure, the median and the maximum of the loads."""
    def of(values: list[float]) -> dict[str, float | None]:
        return {"median": statistics.median(values) if values else None, "max": max(values, default=None)}

    stacks = list(dict.fromkeys(x.stack for x in loads))
    return {label(s, n.name, len(stacks)): {
        m: of([v for x in loads if (x.stack, x.network) == (s, n.name) and (v := getattr(x, m)) is not None])
        for m in ("fcp_ms", "lcp_ms", "dcl_ms", "load_ms", "bytes", "requests")} for s in stacks for n in CONDITIONS}


def report(args: argparse.Namespace, loads: list[Load]) -> dict:
    s = summary(loads)
    slow, fast = (label("this", n.name, 1 + bool(args.baseline)) for n in (SLOW_4G, UNTHROTTLED))
    print(f"\n{args.runs} cold loads per condition; median (max)\n")

    def cell(figures: dict[str, float | None]) -> str:
        return "–" if figures["median"] is None else f"{figures['median']:.0f} ({figures['max']:.0f}) ms"

    print(h.table(["stack, network" if args.baseline else "network", "first contentful paint",
                   "largest contentful paint", "DOMContentLoaded", "load", "transferred", "requests"],
                  [[row, *(cell(f[m]) for m in ("fcp_ms", "lcp_ms", "dcl_ms", "load_ms")),
                    f"{f['bytes']['median'] / 1024:.1f} KiB", f"{f['requests']['median']:.0f}"]
                   for row, f in s.items()]))
    labels = {"fcp_ms": "FCP", "lcp_ms": "LCP", "dcl_ms": "DOMContentLoaded", "load_ms": "load"}
    ratios = {m: a / b for m in labels if (a := s[slow][m]["median"]) is not None and (b := s[fast][m]["median"])}
    print("\nslow 4G / unthrottled (medians, this source): "
          + ", ".join(f"{labels[m]} {r:.1f}×" for m, r in ratios.items()))
    met = {}
    for m, target in (("fcp_ms", FCP_TARGET_MS), ("lcp_ms", LCP_TARGET_MS)):
        f = s[slow][m]
        met[m] = f["median"] is not None and f["median"] <= target
        print(f"{labels[m]} of this source on slow 4G: median {fmt_ms(f['median']).strip()}, max "
              f"{fmt_ms(f['max']).strip()}   (target ≤ {target:.0f} ms: {'met' if met[m] else 'NOT met'}"
              + ("" if f["max"] is None or f["max"] <= target or not met[m] else "; not in every load") + ")")
    failed = sorted({f for x in loads for f in x.failed})
    if failed:
        print("failed requests: " + "; ".join(failed))
    return {"summary": s, "ratios_slow_over_unthrottled": ratios, "fcp_target_ms": FCP_TARGET_MS,
            "lcp_target_ms": LCP_TARGET_MS, "targets_met": met, "failed_requests": failed}


LIGHTHOUSE = h.REPO / "bench" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
LH_FLAGS = ["--headless=new", *(a for a in CHROMIUM_ARGS if a != "--disable-quic")]
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
PAGES, LH_TARGET = ("home", "shop", "product", "cart", "tracking"), 95


async def lighthouse_pages(gateway_url: str) -> dict[str, tuple[str, dict[str, str]]]:
    """``--lighthouse``: each page's path and the extra headers to load it with (a guest order placed for the
    tracking page, a cart of one line)."""
    import httpx

    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as gw:
        shop = h.expect(await gw.get("/api/v1/shops/1"), 200, "the demo shop")  # the seed's only shop
        products = h.expect(await gw.get("/api/v1/products", params={"shop_id": shop["id"]}), 200, "varieties")
        product, variant = next((p, v) for p in products["items"] for v in p["variants"]
                                if v["stock"] >= max(2, v.get("min_order_quantity") or 1))  # one in stock
        quantity = max(2, variant.get("min_order_quantity") or 1)
        order = h.expect(await gw.post("/api/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex},
                                       json=h.guest_order(variant["id"], quantity)), 201, "place an order")
        pages = {"home": ("/", {}), "shop": ("/" + shop["url"].split("/", 3)[3], {}),
                 "product": (f"/p/{product['id']}", {}), "cart": ("/cart", {"Cookie": f"cv_cart={product['id']}."
                                                                             f"{variant['id']}.3"}),
                 "tracking": (f"/t/{order['tracking_url'].rsplit('/', 1)[-1]}", {})}
        for path, headers in pages.values():  # once, unmeasured: a first request pays for imports and caches
            if (resp := await gw.get(path, headers={**headers, "Accept": "text/html"})).status_code != 200:
                raise h.BenchError(f"GET {path}: {resp.status_code}")
    return pages


def audit(url: str, headers: dict[str, str], out: Path) -> tuple[dict[str, int], list[str]]:
    """One Lighthouse audit: the four scores, and the audits that cost points (weighted, score < 1)."""
    argv = [str(LIGHTHOUSE), url, "--output=json", f"--output-path={out}", "--quiet",
            f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={' '.join(LH_FLAGS)}",
            *([f"--extra-headers={json.dumps(headers)}"] if headers else [])]
    done = subprocess.run(argv, env={**os.environ, "CHROME_PATH": str(CHROMIUM)}, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0 or not out.exists():
        raise h.BenchError(f"lighthouse {url} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    report, lost = json.loads(out.read_text()), []
    for key in CATEGORIES:
        for ref in report["categories"][key]["auditRefs"]:
            a = report["audits"].get(ref["id"], {})
            if ref.get("weight", 0) > 0 and a.get("score") is not None and a["score"] < 1:
                lost.append(f"{key}: {ref['id']} {a['score']:.2f}" + (f" ({a['displayValue']})"
                                                                      if a.get("displayValue") else ""))
    return {k: round(100 * (report["categories"][k]["score"] or 0)) for k in CATEGORIES}, lost


async def measure_lighthouse(args: argparse.Namespace, bench: h.Bench) -> int:
    started = time.monotonic()
    gateway = (await asyncio.to_thread(start_stack, bench, demo_seed=True))["gateway"]
    pages, info, version = await lighthouse_pages(gateway), bench.info, chromium_version()
    lh_version = h.tool_version([str(LIGHTHOUSE), "--version"])
    bench.header("Lighthouse", software=f"Lighthouse {lh_version}, {version} ({' '.join(LH_FLAGS)})",
                 data=f"the demo seed on SQLite, set up in {time.monotonic() - started:.0f} s")
    rows, lost_lines = [], []
    for name in args.page or PAGES:
        path, headers = pages[name]
        runs = []
        for i in range(args.runs):
            runs.append(await asyncio.to_thread(audit, gateway + path, headers, bench.tmp / f"{name}-{i + 1}.json"))
            bench.procs.check_alive()
            print(f"  {name:<9} run {i + 1}: " + "  ".join(f"{k} {v}" for k, v in runs[-1][0].items()), flush=True)
        rows.append([name, f"`{path if name != 'tracking' else '/t/{token}'}`",
                     *(statistics.median(s[k] for s, _ in runs) for k in CATEGORIES)])
        lost_lines += [f"- {name}: " + "; ".join(runs[-1][1])] if runs[-1][1] else []
    scores = h.table(["page", "path", "performance", "accessibility", "best practices", "SEO"],
                     [[*row[:2], *(f"{x:g}" for x in row[2:])] for row in rows], left=2)
    met = all(x >= LH_TARGET for row in rows for x in row[2:])
    print(f"\n{scores}\n\ntarget: each score ≥ {LH_TARGET}: {'met' if met else 'NOT met'}\n" + "\n".join(lost_lines))
    if args.write_docs:
        h.write_section("## Lighthouse", "\n".join([
            "## Lighthouse (bench/page_load.py)", "",
            f"`{bench.command}` (`make bench-lighthouse`) on commit {info['source']}, "
            f"{dt.date.today().isoformat()}: Lighthouse {lh_version} at its mobile defaults (simulated throttling), "
            f"{version} headless (`{' '.join(LH_FLAGS)}`); {info['cpus']} CPUs ({info['cpu_model']}), load average "
            f"before the run {info['load_before']}; the demo seed (bench/README.md). Median of {args.runs} audit(s) "
            f"per page. Target: each score ≥ {LH_TARGET} ({'met' if met else 'not met'}).", "", scores, "",
            *(["Audits below full marks in the last run:", "", *lost_lines] if lost_lines else [])]))
    return 0 if met else 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__)
    p.add_argument("--runs", "-n", type=int, help="cold loads per condition (unthrottled, slow 4G), default 5; "
                   "--lighthouse: audits per page, default 1")
    p.add_argument("--products", type=int, default=20, help="active varieties in the shop, each with a photo")
    p.add_argument("--baseline", metavar="REV", help="also a stack of this git revision's source, in turn")
    p.add_argument("--lighthouse", action="store_true", help="Lighthouse's scores of the buyer's pages instead")
    p.add_argument("--page", action="append", choices=PAGES, help="--lighthouse: only this page (repeatable)")
    p.add_argument("--write-docs", action="store_true", help='--lighthouse: write its section of docs/performance.md')
    args = p.parse_args(argv)
    args.runs = args.runs or (1 if args.lighthouse else 5)
    if args.runs < 1 or args.products < 1:
        p.error("--runs and --products must be at least 1")
    return args


async def measure_page(args: argparse.Namespace, bench: h.Bench) -> int:
    started, stacks, baseline, urls = time.monotonic(), {"this": None}, None, {}
    if args.baseline:
        baseline = h.baseline_source(args.baseline, source := bench.tmp / "baseline-source")
        stacks[f"baseline {baseline}"] = source
    for stack, source in stacks.items():
        gateway = (await asyncio.to_thread(start_stack, bench, source=source))["gateway"]
        path, uploaded = await seed_shop(gateway, args.products)
        urls[stack] = gateway + path
    bench.header("page load", baseline=f"{baseline} ({args.baseline})" if baseline else None,
                 software=f"{chromium_version()} headless (Playwright)", page=(
        f"GET {path}: a shop of {args.products} active varieties, each with a photo "
        f"({uploaded / args.products / 1024:.0f} KiB JPEG uploaded); apps on SQLite, set up in "
        f"{time.monotonic() - started:.0f} s"), network=NETWORKS,
        phone="390×844 CSS px at 3×, touch, vi-VN; a new browser context per load (cold cache and connections)")
    loads = await measure(args, urls)
    bench.procs.check_alive()
    bench.write_json(args, chromium=chromium_version(), path=path, networks=CONDITIONS, loads=loads,
                     **report(args, loads))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        sys.stderr.write(f"bench/page_load.py needs Chromium at {CHROMIUM} (Debian: apt-get install -y chromium).\n")
        return 2
    if args.lighthouse and not LIGHTHOUSE.exists():
        sys.stderr.write("bench/page_load.py --lighthouse needs Lighthouse: npm ci --prefix bench/lighthouse "
                         "(make bench-lighthouse does it).\n")
        return 2
    body = measure_lighthouse if args.lighthouse else measure_page
    return h.run(__file__, lambda bench: asyncio.run(body(args, bench)), needs=("playwright", "gateway"),
                 target="bench-lighthouse" if args.lighthouse else "bench-page", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

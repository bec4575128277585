"""How soon does a grower's shop page show on a phone over slow 4G?

The four apps and a shop of ``--products`` varieties with photos; Chromium (Playwright) opens ``/s/{slug}``
as a phone with a cold cache, unthrottled and on DevTools' "Slow 4G": FCP, LCP, DOMContentLoaded, load,
bytes, and the slow-4G/unthrottled ratios. ``--baseline REV``: the same beside a second stack of that
revision's source (``git archive``), in turn. Targets (issue 21): FCP ≤ 0.8 s, LCP ≤ 2.5 s on slow 4G.

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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

    def describe(self) -> str:
        return (f"{self.name}: {self.latency_ms:g} ms latency per request, {self.down_bytes_s * 8 / 1e6:.2f} Mbit/s "
                f"down, {self.up_bytes_s * 8 / 1e3:.0f} kbit/s up" if self.latency_ms
                else f"{self.name}: not throttled (loopback)")


# Chrome DevTools' "Slow 4G" preset (devtools-frontend, NetworkManager: Slow4GConditions).
SLOW_4G = Network("slow 4G", latency_ms=150 * 3.75, down_bytes_s=1.6e6 / 8 * 0.9, up_bytes_s=750e3 / 8 * 0.9)
UNTHROTTLED = Network("unthrottled")
CONDITIONS = (UNTHROTTLED, SLOW_4G)


VARIETIES = ["Súng Thái đỏ", "Súng Nam Mỹ tím", "Súng Mi Nhật", "Sen Bách Diệp", "Sen Quan Âm", "Súng Chúa",
             "Sen mini Nhật", "Súng lai Tường Vi", "Sen trắng Huế", "Súng ma", "Sen Tịnh Đế", "Súng vàng Mexico",
             "Sen hồng Đồng Tháp", "Súng xanh Ai Cập", "Sen cung đình", "Súng Victoria", "Sen Thập Bát",
             "Súng đêm trắng", "Sen Nhật đỏ", "Súng tím Thái", "Bèo tây", "Thủy trúc", "Rau mác", "Lục bình"]


def product_body(i: int, rng: random.Random) -> dict:
    name = VARIETIES[i % len(VARIETIES)] + (f" (lứa {i // len(VARIETIES) + 1})" if i >= len(VARIETIES) else "")
    retail = rng.randrange(30, 300) * 1000
    return {
        "name": name, "description": f"{name}: hoa to, nở bền, hợp chậu và hồ nhỏ. Giao củ giống đã nảy mầm.",
        "category": "lotus" if name.startswith("Sen") else "water_lily", "status": "active", "variants": [
            {"label": "Củ giống", "retail_price": retail, "stock": 200, "min_order_quantity": 1,
             "wholesale_tiers": [{"min_quantity": 10, "unit_price": retail * 85 // 100 // 1000 * 1000},
                                 {"min_quantity": 50, "unit_price": retail * 70 // 100 // 1000 * 1000}]},
            {"label": "Chậu 30 cm", "retail_price": retail * 3, "stock": 20},
        ],
    }


async def seed_shop(gateway_url: str, products: int) -> tuple[str, int]:
    """A grower's shop of ``products`` varieties, each with a photo; (its URL, the JPEG bytes uploaded)."""
    import httpx

    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as gw:
        headers, shop = await h.open_shop(gw, "0912345678")
        uploaded = 0
        for i in range(products):
            product = h.expect(await gw.post("/api/v1/products", headers=headers, json=product_body(i, rng)),
                               201, f"add variety {i + 1}")
            jpeg = h.photo_jpeg(i)
            uploaded += len(jpeg)
            h.expect(await gw.post(f"/api/v1/products/{product['id']}/photos", headers=headers,
                                   files={"file": (f"hoa-{i + 1}.jpg", jpeg, "image/jpeg")}),
                     201, f"photo of variety {i + 1}")
    return shop["url"], uploaded


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
    sizes: list[tuple[str, int]] = field(default_factory=list)  # (URL, bytes on the wire) per response


METRICS_JS = """async () => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
    const lcp = await new Promise(resolve => {
        let last = null;
        new PerformanceObserver(list => { const e = list.getEntries(); last = e[e.length - 1]; })
            .observe({type: 'largest-contentful-paint', buffered: true});
        setTimeout(() => resolve(last ? last.startTime : null), 50);
    });
    return {fcp: fcp ? fcp.startTime : null, lcp, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd};
}"""


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
        sizes = [(urls.get(rid, "?"), n) for rid, n in wire.items()]
        return Load(stack, network.name, m["fcp"], m["lcp"], m["dcl"], m["load"], sum(wire.values()), len(wire),
                    failed, sizes)
    finally:
        await context.close()


def chromium_version() -> str:
    return h.tool_version([str(CHROMIUM), "--version"]).split(" built on")[0]


def chromium_missing(script: str) -> bool:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return False
    sys.stderr.write(f"bench/{script} needs Chromium at {CHROMIUM}.\n"
                     "  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium\n")
    return True


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
    if args.requests:
        last = [x for x in loads if (x.stack, x.network) == ("this", SLOW_4G.name)][-1]
        print(f"\nresponses of the last slow-4G load ({last.bytes / 1024:.1f} KiB on the wire):")
        for where, size in sorted(last.sizes, key=lambda item: -item[1]):
            print(f"  {size / 1024:8.1f} KiB  {urlsplit(where).path or where}")
    failed = sorted({f for x in loads for f in x.failed})
    if failed:
        print("failed requests: " + "; ".join(failed))
    return {"summary": s, "ratios_slow_over_unthrottled": ratios, "fcp_target_ms": FCP_TARGET_MS,
            "lcp_target_ms": LCP_TARGET_MS, "targets_met": met, "failed_requests": failed}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__)
    p.add_argument("--runs", "-n", type=int, default=5, help="cold loads per condition (unthrottled, slow 4G)")
    p.add_argument("--products", type=int, default=20, help="active varieties in the shop, each with a photo")
    p.add_argument("--path", help="load this path of the gateway instead of the shop page /s/{slug}")
    p.add_argument("--requests", action="store_true", help="list the responses of the last slow-4G load")
    p.add_argument("--baseline", metavar="REV", help="also a stack of this git revision's source, in turn")
    args = p.parse_args(argv)
    if args.runs < 1 or args.products < 1 or not (args.path or "/").startswith("/"):
        p.error("--runs and --products must be at least 1, --path must start with /")
    return args


async def measure_page(args: argparse.Namespace, bench: h.Bench) -> int:
    started = time.monotonic()
    gateways = {"this": (await asyncio.to_thread(start_stack, bench))["gateway"]}
    baseline = None
    if args.baseline:
        source = bench.tmp / "baseline-source"
        baseline = h.baseline_source(args.baseline, source)
        gateways[f"baseline {baseline}"] = (await asyncio.to_thread(start_stack, bench, source=source))["gateway"]
    urls = {}
    for stack, gateway in gateways.items():
        shop_url, uploaded = await seed_shop(gateway, args.products)
        urls[stack] = gateway + (args.path or "/" + shop_url.split("/", 3)[3])
    path = urlsplit(urls["this"]).path
    bench.header("page load", baseline=f"{baseline} ({args.baseline})" if baseline else None,
                 software=f"{chromium_version()} headless (Playwright)", page=(
        f"GET {path}: a shop of {args.products} active varieties, each with a photo "
        f"({uploaded / args.products / 1024:.0f} KiB JPEG 1200×900 uploaded, stored as the catalog's WebP "
        f"sizes); apps on SQLite, LOG_LEVEL=WARNING, set up in {time.monotonic() - started:.0f} s"),
        phone=f"{PHONE['viewport']['width']}×{PHONE['viewport']['height']} CSS px at {PHONE['device_scale_factor']}×, "
        "touch, vi-VN; a new browser context per load (cold cache and connections)",
        network=f"{SLOW_4G.describe()} (Chrome DevTools' Slow 4G preset), and {UNTHROTTLED.describe()}",
        CPU="not slowed")
    loads = await measure(args, urls)
    bench.procs.check_alive()
    bench.write_json(args, chromium=chromium_version(), path=path, networks={n.name: asdict(n) for n in CONDITIONS},
                     loads=[asdict(x) for x in loads], **report(args, loads))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if chromium_missing("page_load.py"):
        return 2
    return h.run(__file__, lambda bench: asyncio.run(measure_page(args, bench)), needs=("playwright", "gateway"),
                 target="bench-page", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

"""How soon does a grower's shop page show on a phone over slow 4G?

Starts the marketplace, each app its own process in a temporary directory on its own SQLite database
(notify, catalog, orders, the gateway: ``python -m … serve``, LOG_LEVEL=WARNING), and seeds through the
public API a grower's shop with ``--products`` active varieties (20), each with a photo: a generated
1200×900 JPEG uploaded to ``/api/v1/products/{id}/photos``, so the catalog stores its real WebP sizes.

Then Chromium (Debian's, ``/usr/bin/chromium``, through Playwright) opens the shop page ``/s/{slug}``
as a phone (390×844 CSS pixels at 3×, touch, vi-VN) with a cold cache: every load is a new browser
context (its own cache, cookies and connections). Each of ``--runs`` rounds loads the page once on an
unthrottled connection and once on slow 4G, emulated with the DevTools protocol
(``Network.emulateNetworkConditions``) at Chrome DevTools' "Slow 4G" preset:

    latency   562.5 ms per request  (150 ms RTT × 3.75)
    download  1.44 Mbit/s           (1.6 Mbit/s × 0.9)
    upload    675 kbit/s            (750 kbit/s × 0.9)

These are Lighthouse's mobile figures (150 ms RTT, 1.6 Mbit/s down, 750 kbit/s up) with the factors
DevTools and Lighthouse's "devtools" throttling apply because the throttle acts per request: it adds
no TCP or TLS round trips, so the latency stands for them. The CPU is not slowed unless
``--cpu-slowdown N`` is given (Lighthouse's mobile run uses 4 on a fast desktop).

For each load it reads first contentful paint (``performance.getEntriesByType('paint')``), largest
contentful paint, DOMContentLoaded and load (from the navigation entry), and the bytes on the wire
(DevTools' ``encodedDataLength`` of every response, headers included) until the network has been quiet
for half a second after load (lazy photos do not hold the load event back). Prints every load, then the
median and the maximum per condition, the slow-4G/unthrottled ratio of the medians, and the target:
first contentful paint ≤ 1.5 s on slow 4G.

    make bench-page
    .venv/bin/python bench/page_load.py --runs 5
    .venv/bin/python bench/page_load.py --runs 1 --path /      # another page of the same stack

See bench/README.md for the options and docs/performance.md ("Page load on slow 4G") for figures.
Needs /usr/bin/chromium (Debian: ``apt-get install -y chromium``). Not part of the test suite. Every
process it starts is stopped at the end, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import math
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
# bench/ first on the path would let bench/gateway.py shadow the `gateway` package: put the repository there.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(REPO)

from bench.harness import VENV_PYTHON, BenchError, Processes, ensure_venv, free_ports, machine, wait_ready  # noqa: E402

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True,
         "locale": "vi-VN", "timezone_id": "Asia/Ho_Chi_Minh"}
APPS = ("notify", "catalog", "orders", "gateway")
MODULES = {"notify": "services.notify", "catalog": "services.catalog", "orders": "services.orders",
           "gateway": "gateway"}
FCP_TARGET_MS = 1500.0
PASSWORD = "Sen-hong-Dong-Thap-7"


@dataclass(frozen=True)
class Network:
    name: str
    latency_ms: float = 0.0
    down_bytes_s: float = -1.0  # -1: not throttled (the DevTools protocol's convention)
    up_bytes_s: float = -1.0

    @property
    def throttled(self) -> bool:
        return self.latency_ms > 0 or self.down_bytes_s > 0 or self.up_bytes_s > 0

    def describe(self) -> str:
        if not self.throttled:
            return f"{self.name}: not throttled (loopback)"
        return (f"{self.name}: {self.latency_ms:g} ms latency per request, {self.down_bytes_s * 8 / 1e6:.2f} Mbit/s "
                f"down, {self.up_bytes_s * 8 / 1e3:.0f} kbit/s up")


# Chrome DevTools' "Slow 4G" preset (devtools-frontend, NetworkManager: Slow4GConditions).
SLOW_4G = Network("slow 4G", latency_ms=150 * 3.75, down_bytes_s=1.6e6 / 8 * 0.9, up_bytes_s=750e3 / 8 * 0.9)
UNTHROTTLED = Network("unthrottled")
CONDITIONS = (UNTHROTTLED, SLOW_4G)


# ── child processes ──────────────────────────────────────────────────────────────────────────────


async def start_stack(procs: Processes, python: str, run_dir: Path, *, demo_seed: bool = False) -> dict[str, str]:
    """The four apps as processes in ``run_dir``, each on its own SQLite file; their URLs once ready.
    ``demo_seed``: first the demo nursery, as ``make seed`` makes it (``python -m gateway seed``, then
    ``python -m services.catalog seed``: the grower, the shop and its varieties with their photos)."""
    ports = dict(zip(APPS, free_ports(len(APPS)), strict=True))
    url = {app: f"http://127.0.0.1:{port}" for app, port in ports.items()}
    db = {app: f"sqlite+aiosqlite:///{run_dir / f'{app}.db'}" for app in APPS}
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CATALOG_", "GATEWAY_", "ORDERS_", "NOTIFY_", "EVENT_", "SMTP_"))}
    base.update(LOG_LEVEL="WARNING", LOG_FORMAT="text", ENVIRONMENT="development", PYTHONDONTWRITEBYTECODE="1",
                PYTHONPATH=str(REPO))
    env = {
        "notify": {"NOTIFY_DATABASE_URL": db["notify"]},
        "catalog": {"CATALOG_DATABASE_URL": db["catalog"], "CATALOG_NOTIFY_URL": url["notify"],
                    "CATALOG_PUBLIC_BASE_URL": url["gateway"], "CATALOG_MEDIA_DIR": str(run_dir / "media")},
        "orders": {"ORDERS_DATABASE_URL": db["orders"], "ORDERS_CATALOG_URL": url["catalog"],
                   "ORDERS_NOTIFY_URL": url["notify"], "ORDERS_PUBLIC_BASE_URL": url["gateway"]},
        "gateway": {"GATEWAY_DATABASE_URL": db["gateway"], "GATEWAY_CATALOG_URL": url["catalog"],
                    "GATEWAY_ORDERS_URL": url["orders"], "GATEWAY_NOTIFY_URL": url["notify"]},
    }

    def start(app: str) -> None:
        procs.start(app, [python, "-m", MODULES[app], "serve", "--port", str(ports[app])], {**base, **env[app]},
                    run_dir / f"{app}.log")

    if demo_seed:
        for app in ("gateway", "catalog"):
            done = await asyncio.to_thread(subprocess.run, [python, "-m", MODULES[app], "seed"], cwd=run_dir,
                                           env={**base, **env[app]}, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise BenchError(f"{app} seed exited with {done.returncode}:\n{done.stdout}{done.stderr}")
    # The first app makes the development key pair under run_dir/var/keys/; the others then read it.
    start("notify")
    await asyncio.to_thread(wait_ready, procs, f"{url['notify']}/readyz")
    for app in APPS[1:]:
        start(app)
    await asyncio.gather(*(asyncio.to_thread(wait_ready, procs, f"{url[app]}/readyz") for app in APPS[1:]))
    return url


# ── the shop ─────────────────────────────────────────────────────────────────────────────────────

VARIETIES = ["Súng Thái đỏ", "Súng Nam Mỹ tím", "Súng Mi Nhật", "Sen Bách Diệp", "Sen Quan Âm", "Súng Chúa",
             "Sen mini Nhật", "Súng lai Tường Vi", "Sen trắng Huế", "Súng ma", "Sen Tịnh Đế", "Súng vàng Mexico",
             "Sen hồng Đồng Tháp", "Súng xanh Ai Cập", "Sen cung đình", "Súng Victoria", "Sen Thập Bát",
             "Súng đêm trắng", "Sen Nhật đỏ", "Súng tím Thái", "Bèo tây", "Thủy trúc", "Rau mác", "Lục bình"]


def photo_jpeg(seed: int) -> bytes:
    """A 1200×900 JPEG, different for every seed (the catalog keeps one file per content): petals on a
    pond, soft gradients with some grain, so that it compresses like a photo rather than a flat colour."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    w, h = 1200, 900
    top, bottom = (rng.randrange(20, 80), rng.randrange(80, 140), rng.randrange(60, 120)), (10, 40, 30)
    img = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", (w, h), bottom), Image.new("RGB", (w, h), top), img)
    draw = ImageDraw.Draw(img)
    petal = (rng.randrange(200, 256), rng.randrange(60, 200), rng.randrange(100, 220))
    cx, cy = rng.randrange(400, 800), rng.randrange(300, 600)
    for i in range(14):
        angle = i * 2 * math.pi / 14
        px, py = cx + 170 * math.cos(angle), cy + 170 * math.sin(angle)
        draw.ellipse((px - 110, py - 60, px + 110, py + 60), fill=petal, outline=(255, 255, 255))
    draw.ellipse((cx - 70, cy - 70, cx + 70, cy + 70), fill=(250, 210, 60))
    for _ in range(600):  # leaves and their veins: the fine detail that makes a photo weigh
        x, y, r = rng.randrange(w), rng.randrange(h), rng.randrange(6, 60)
        if (x - cx) ** 2 + (y - cy) ** 2 < 240 ** 2:
            continue
        green = (rng.randrange(10, 70), rng.randrange(70, 170), rng.randrange(20, 80))
        draw.ellipse((x - r, y - r // 2, x + r, y + r // 2), fill=green, outline=(green[0], green[1] + 40, green[2]))
        draw.line((x - r, y, x + r, y), fill=(green[0] + 40, green[1] + 60, green[2] + 30))
    img = img.filter(ImageFilter.GaussianBlur(0.8))
    grain = Image.effect_noise((w, h), 40).convert("RGB")
    img = Image.blend(img, grain, 0.12)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def product_body(i: int, rng: random.Random) -> dict:
    name = VARIETIES[i % len(VARIETIES)] + (f" (lứa {i // len(VARIETIES) + 1})" if i >= len(VARIETIES) else "")
    retail = rng.randrange(30, 300) * 1000
    return {
        "name": name, "description": f"{name}: hoa to, nở bền, hợp chậu và hồ nhỏ. Giao củ giống đã nảy mầm.",
        "category": "lotus" if name.startswith("Sen") else "water_lily", "status": "active",
        "variants": [
            {"label": "Củ giống", "retail_price": retail, "stock": 200, "min_order_quantity": 1,
             "wholesale_tiers": [{"min_quantity": 10, "unit_price": retail * 85 // 100 // 1000 * 1000},
                                 {"min_quantity": 50, "unit_price": retail * 70 // 100 // 1000 * 1000}]},
            {"label": "Chậu 30 cm", "retail_price": retail * 3, "stock": 20},
        ],
    }


async def expect(resp, status: int, what: str) -> dict:
    if resp.status_code != status:
        raise BenchError(f"{what}: {resp.status_code} {resp.text[:300]}")
    return resp.json()


@dataclass
class Shop:
    url: str
    products: int
    photos: int
    photo_bytes: int  # the JPEGs uploaded


async def seed_shop(gateway_url: str, products: int) -> Shop:
    import httpx

    rng = random.Random(7)
    phone = "0912345678"
    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as gw:
        await expect(await gw.post("/api/v1/auth/register", json={"role": "grower", "name": "Bà Tư", "phone": phone,
                                                                  "password": PASSWORD}), 201, "register")
        tokens = await expect(await gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD}),
                              200, "sign in")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        shop = await expect(await gw.post("/api/v1/shops", headers=headers, json={
            "name": "Vườn Sen Bà Tư", "description": "Sen và súng Đồng Tháp, giao toàn quốc",
            "province_code": "92", "ward_code": "31135", "street": "12 Lê Lợi", "phone": phone,
            "delivery": {"pickup": True, "flat_fee": 30000, "free_above": 800000}}), 201, "open the shop")
        uploaded = 0
        for i in range(products):
            product = await expect(await gw.post("/api/v1/products", headers=headers, json=product_body(i, rng)),
                                   201, f"add variety {i + 1}")
            jpeg = photo_jpeg(i)
            uploaded += len(jpeg)
            await expect(await gw.post(f"/api/v1/products/{product['id']}/photos", headers=headers,
                                       files={"file": (f"hoa-{i + 1}.jpg", jpeg, "image/jpeg")}),
                         201, f"photo of variety {i + 1}")
    return Shop(shop["url"], products, products, uploaded)


# ── loading the page ─────────────────────────────────────────────────────────────────────────────


@dataclass
class Load:
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


async def load_once(browser, url: str, network: Network, cpu_slowdown: float) -> Load:
    context = await browser.new_context(**PHONE)  # a new context: an empty cache and no open connection
    try:
        page = await context.new_page()
        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        await cdp.send("Network.setCacheDisabled", {"cacheDisabled": False})
        if network.throttled:
            await cdp.send("Network.emulateNetworkConditions", {
                "offline": False, "latency": network.latency_ms, "downloadThroughput": network.down_bytes_s,
                "uploadThroughput": network.up_bytes_s, "connectionType": "cellular4g"})
        if cpu_slowdown > 1:
            await cdp.send("Emulation.setCPUThrottlingRate", {"rate": cpu_slowdown})
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
            raise BenchError(f"GET {url}: {reply.status if reply else 'no reply'}")
        # Lazy photos do not hold back the load event: wait until the network has been quiet for
        # 0.5 s, so that the bytes count every photo the first screen shows and LCP has seen them.
        await page.wait_for_load_state("networkidle", timeout=120_000)
        m = await page.evaluate(METRICS_JS)
        sizes = [(urls.get(rid, "?"), n) for rid, n in wire.items()]
        return Load(network.name, m["fcp"], m["lcp"], m["dcl"], m["load"], sum(wire.values()), len(wire), failed,
                    sizes)
    finally:
        await context.close()


def chromium_version() -> str:
    try:
        out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=20).stdout
    except OSError:
        return "Chromium ?"
    return out.strip().split(" built on")[0] or "Chromium ?"


async def measure(args: argparse.Namespace, url: str) -> list[Load]:
    from playwright.async_api import async_playwright

    loads: list[Load] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # One unmeasured load first: the apps' first request pays for imports and caches, not the page.
            await load_once(browser, url, UNTHROTTLED, 1)
            for run in range(1, args.runs + 1):
                for network in CONDITIONS:  # in turn, so that a disturbance touches both alike
                    result = await load_once(browser, url, network, args.cpu_slowdown)
                    loads.append(result)
                    print(f"  run {run}/{args.runs} {network.name:<11}  FCP {fmt_ms(result.fcp_ms)}  "
                          f"LCP {fmt_ms(result.lcp_ms)}  DOMContentLoaded {fmt_ms(result.dcl_ms)}  "
                          f"load {fmt_ms(result.load_ms)}  {result.bytes / 1024:7.1f} KiB in {result.requests} "
                          "requests" + (f"  FAILED: {'; '.join(result.failed)}" if result.failed else ""), flush=True)
        finally:
            await browser.close()
    return loads


# ── report ───────────────────────────────────────────────────────────────────────────────────────


def fmt_ms(ms: float | None) -> str:
    return "     –  " if ms is None else f"{ms:6.0f} ms"


def summary(loads: list[Load]) -> dict[str, dict[str, dict[str, float | None]]]:
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for network in CONDITIONS:
        mine = [x for x in loads if x.network == network.name]
        out[network.name] = {}
        for metric in ("fcp_ms", "lcp_ms", "dcl_ms", "load_ms", "bytes", "requests"):
            values = [getattr(x, metric) for x in mine if getattr(x, metric) is not None]
            out[network.name][metric] = {"median": statistics.median(values) if values else None,
                                         "max": max(values) if values else None}
    return out


def report(args: argparse.Namespace, loads: list[Load]) -> dict:
    s = summary(loads)
    print()
    print(f"{args.runs} cold loads per condition; median (max)")
    print()
    print("| network     | first contentful paint | largest contentful paint | DOMContentLoaded |           load |"
          " transferred | requests |")
    print("|-------------|-----------------------:|-------------------------:|-----------------:|---------------:|"
          "------------:|---------:|")

    def cell(figures: dict[str, float | None], width: int) -> str:
        med, top = figures["median"], figures["max"]
        text = "–" if med is None else f"{med:.0f} ({top:.0f}) ms"
        return f"{text:>{width}}"

    for network in CONDITIONS:
        f = s[network.name]
        print(f"| {network.name:<11} | {cell(f['fcp_ms'], 22)} | {cell(f['lcp_ms'], 24)} | {cell(f['dcl_ms'], 16)} | "
              f"{cell(f['load_ms'], 14)} | {f['bytes']['median'] / 1024:>7.1f} KiB | {f['requests']['median']:>8.0f} |")
    ratios = {}
    for metric in ("fcp_ms", "lcp_ms", "dcl_ms", "load_ms"):
        slow, fast = s[SLOW_4G.name][metric]["median"], s[UNTHROTTLED.name][metric]["median"]
        if slow is not None and fast:
            ratios[metric] = slow / fast
    print()
    print("slow 4G / unthrottled (medians): "
          + ", ".join(f"{label} {ratios[m]:.1f}×" for m, label in (("fcp_ms", "FCP"), ("lcp_ms", "LCP"),
                                                                   ("dcl_ms", "DOMContentLoaded"), ("load_ms", "load"))
                      if m in ratios))
    fcp = s[SLOW_4G.name]["fcp_ms"]
    met = fcp["median"] is not None and fcp["median"] <= FCP_TARGET_MS
    print(f"first contentful paint on slow 4G: median {fmt_ms(fcp['median']).strip()}, max {fmt_ms(fcp['max']).strip()}"
          f"   (target ≤ {FCP_TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}"
          + ("" if fcp["max"] is None or fcp["max"] <= FCP_TARGET_MS or not met else "; not in every load") + ")")
    if args.requests:
        last = [x for x in loads if x.network == SLOW_4G.name][-1]
        print()
        print(f"responses of the last slow-4G load ({last.bytes / 1024:.1f} KiB on the wire):")
        for where, size in sorted(last.sizes, key=lambda item: -item[1]):
            print(f"  {size / 1024:8.1f} KiB  {urlsplit(where).path or where}")
    failed = sorted({f for x in loads for f in x.failed})
    if failed:
        print("failed requests: " + "; ".join(failed))
    return {"summary": s, "ratios_slow_over_unthrottled": ratios, "fcp_target_ms": FCP_TARGET_MS,
            "fcp_target_met": met, "failed_requests": failed}


# ── main ─────────────────────────────────────────────────────────────────────────────────────────


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--runs", "-n", type=int, default=5, help="cold loads per condition (unthrottled, slow 4G)")
    p.add_argument("--products", type=int, default=20, help="active varieties in the shop, each with a photo")
    p.add_argument("--path", help="load this path of the gateway instead of the shop page /s/{slug}")
    p.add_argument("--cpu-slowdown", type=float, default=1.0,
                   help="slow Chromium's CPU this many times (DevTools' CPU throttling; 1: not slowed)")
    p.add_argument("--requests", action="store_true", help="list the responses of the last slow-4G load")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (databases, photos, logs)")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON to FILE")
    args = p.parse_args(argv)
    if args.runs < 1 or args.products < 1:
        p.error("--runs and --products must be at least 1")
    if args.cpu_slowdown < 1:
        p.error("--cpu-slowdown must be at least 1")
    if args.path is not None and not args.path.startswith("/"):
        p.error("--path must start with /")
    return args


async def run(args: argparse.Namespace, procs: Processes, tmp: Path, python: str, command: str) -> dict:
    started = time.monotonic()
    urls = await start_stack(procs, python, tmp)
    shop = await seed_shop(urls["gateway"], args.products)
    path = args.path or "/" + shop.url.split("/", 3)[3]
    url = urls["gateway"] + path
    info = machine()
    print(f"Chợ Vườn page load — {dt.datetime.now().astimezone().isoformat(timespec='seconds')}")
    print(f"  machine : {info['cpus']} CPUs, {info['cpu_model']}, {info['kernel']}, load average before the run "
          f"{info['load_before']}")
    print(f"  software: Python {info['python']}, {chromium_version()} headless (Playwright)")
    print(f"  source  : commit {info['source']}")
    print(f"  command : {command}")
    print(f"  page    : GET {path}: a shop of {shop.products} active varieties, each with a photo "
          f"({shop.photo_bytes / shop.photos / 1024:.0f} KiB JPEG 1200×900 uploaded, stored as the catalog's "
          "WebP sizes); "
          f"apps on SQLite, LOG_LEVEL=WARNING, set up in {time.monotonic() - started:.0f} s")
    print(f"  phone   : {PHONE['viewport']['width']}×{PHONE['viewport']['height']} CSS px at "
          f"{PHONE['device_scale_factor']}×, touch, vi-VN; a new browser context per load (cold cache and connections)")
    print(f"  network : {SLOW_4G.describe()} (Chrome DevTools' Slow 4G preset); baseline {UNTHROTTLED.describe()}")
    print(f"  CPU     : {'not slowed' if args.cpu_slowdown == 1 else f'{args.cpu_slowdown:g}× slower (DevTools)'}")
    print(flush=True)
    loads = await measure(args, url)
    procs.check_alive()
    figures = report(args, loads)
    return {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "command": command,
            "machine": info, "chromium": chromium_version(), "source": info["source"], "path": path,
            "products": shop.products, "runs": args.runs, "cpu_slowdown": args.cpu_slowdown,
            "networks": {n.name: asdict(n) for n in CONDITIONS}, "loads": [asdict(x) for x in loads], **figures}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        sys.stderr.write(f"bench/page_load.py needs Chromium at {CHROMIUM}.\n"
                         "  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium\n")
        return 2
    ensure_venv(__file__, "playwright", "gateway", target="bench-page")
    python = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))

    # A SIGTERM (e.g. from CI's timeout) unwinds like Ctrl-C, so the children are stopped.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable, REPO),
                                                 os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    tmp = Path(tempfile.mkdtemp(prefix="bench-page-"))
    procs = Processes()
    try:
        result = asyncio.run(run(args, procs, tmp, python, command))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; stopping what was started …", file=sys.stderr)
        return 130
    except BenchError as exc:
        print(f"bench/page_load.py: {exc}", file=sys.stderr)
        return 1
    finally:
        procs.stop_all()
        if args.keep:
            print(f"(kept {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

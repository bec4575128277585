"""Lighthouse's four scores for the buyer's pages: home, shop, product, cart and tracking.

The four apps with the demo seed, a guest order for the tracking page, a cart of one line; each page
audited ``--runs`` times by Lighthouse (bench/lighthouse/) driving Debian's Chromium, mobile defaults;
the median per category, written to docs/performance.md with ``--write-docs``. Target: each ≥ 95.

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:  # run as a script: the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # first, or bench/gateway.py shadows `gateway`

from bench.harness import REPO, BenchError, Options, expect, guest_order, run, table, write_section  # noqa: E402
from bench.page_load import CHROMIUM, chromium_missing, chromium_version, start_stack  # noqa: E402

LIGHTHOUSE = REPO / "bench" / "lighthouse" / "node_modules" / ".bin" / "lighthouse"
CHROME_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
PAGES = ("home", "shop", "product", "cart", "tracking")
TARGET = 95
NOINDEX = ("The cart and the tracking page say `<meta name=\"robots\" content=\"noindex\">` on purpose: the cart"
           " is one buyer's, and a tracking page shows a buyer's name, phone and address behind a private link, "
           "so neither belongs in a search engine. Lighthouse's `is-crawlable` audit fails on any page kept out "
           "of the index (meta robots, an `X-Robots-Tag` header or a robots.txt rule alike) and weighs 4 of "
           "SEO's 10 there, so these two pages stop at 60 while every other SEO audit passes.")


async def prepare(gateway_url: str) -> dict[str, tuple[str, dict[str, str]]]:
    """Each page's path and the extra headers to load it with."""
    import httpx

    async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as gw:
        shop = expect(await gw.get("/api/v1/shops/1"), 200, "the demo shop")  # the seed's only shop
        products = expect(await gw.get("/api/v1/products", params={"shop_id": shop["id"]}), 200, "varieties")
        product, variant = next((p, v) for p in products["items"] for v in p["variants"]
                                if v["stock"] >= max(2, v.get("min_order_quantity") or 1))  # one in stock
        order = expect(await gw.post("/api/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json=guest_order(
            variant["id"], max(2, variant.get("min_order_quantity") or 1))), 201, "place an order")
        token = order["tracking_url"].rsplit("/", 1)[-1]
        cart = {"Cookie": f"cv_cart={product['id']}.{variant['id']}.3"}
        pages = {"home": ("/", {}), "shop": ("/" + shop["url"].split("/", 3)[3], {}),
                 "product": (f"/p/{product['id']}", {}), "cart": ("/cart", cart), "tracking": (f"/t/{token}", {})}
        # Each page once, unmeasured: an app's first request pays for imports, templates and caches.
        for path, headers in pages.values():
            resp = await gw.get(path, headers={**headers, "Accept": "text/html"})
            if resp.status_code != 200:
                raise BenchError(f"GET {path}: {resp.status_code}")
    return pages


def audit(url: str, headers: dict[str, str], out: Path) -> dict:
    argv = [str(LIGHTHOUSE), url, "--output=json", f"--output-path={out}", "--quiet",
            f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={' '.join(CHROME_FLAGS)}"]
    if headers:
        argv.append(f"--extra-headers={json.dumps(headers)}")
    done = subprocess.run(argv, env={**os.environ, "CHROME_PATH": str(CHROMIUM)}, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0 or not out.exists():
        raise BenchError(f"lighthouse {url} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return json.loads(out.read_text())


def losses(report: dict) -> list[str]:
    """The audits that cost points (weighted, score < 1), and the performance metrics' values."""
    lost = []
    for key in CATEGORIES:
        for ref in report["categories"][key]["auditRefs"]:
            a = report["audits"].get(ref["id"], {})
            if ref.get("weight", 0) > 0 and a.get("score") is not None and a["score"] < 1:
                value = f" ({a['displayValue']})" if a.get("displayValue") else ""
                lost.append(f"{key}: {ref['id']} {a['score']:.2f}{value}")
    return lost


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = Options(__doc__, json=False)
    p.add_argument("--runs", "-n", type=int, default=1, help="audits per page (the median score is reported)")
    p.add_argument("--page", action="append", choices=PAGES, help="only this page (repeatable)")
    p.add_argument("--write-docs", action="store_true", help='write the section "Lighthouse" of docs/performance.md')
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


async def audit_pages(args: argparse.Namespace, bench) -> int:
    started = time.monotonic()
    urls = await asyncio.to_thread(start_stack, bench, demo_seed=True)
    pages = await prepare(urls["gateway"])
    info, version = bench.info, chromium_version()
    lh_version = (await asyncio.to_thread(subprocess.run, [str(LIGHTHOUSE), "--version"], capture_output=True,
                                          text=True)).stdout.strip()
    bench.header("Lighthouse", software=f"Lighthouse {lh_version}, {version} ({' '.join(CHROME_FLAGS)})",
                 data=f"the demo seed on SQLite, set up in {time.monotonic() - started:.0f} s")
    rows, notes = [], {}
    for name in args.page or PAGES:
        path, headers = pages[name]
        runs = []
        for i in range(args.runs):
            report = await asyncio.to_thread(audit, urls["gateway"] + path, headers, bench.tmp / f"{name}-{i + 1}.json")
            bench.procs.check_alive()
            scores = {k: round(100 * (report["categories"][k]["score"] or 0)) for k in CATEGORIES}
            runs.append((scores, report))
            print(f"  {name:<9} run {i + 1}: " + "  ".join(f"{k} {v}" for k, v in scores.items()), flush=True)
        median = {k: statistics.median(s[k] for s, _ in runs) for k in CATEGORIES}
        rows.append((name, path if name != "tracking" else "/t/{token}", median))
        notes[name] = losses(runs[-1][1])
    scores = table(["page", "path", "performance", "accessibility", "best practices", "SEO"],
                   [[name, f"`{path}`", *(f"{m[k]:g}" for k in CATEGORIES)] for name, path, m in rows], left=2)
    met = all(m[k] >= TARGET for _, _, m in rows for k in CATEGORIES)
    lost_lines = [f"- {name}: " + "; ".join(lost) for name, lost in notes.items() if lost]
    print(f"\n{scores}\n\ntarget: each score ≥ {TARGET}: {'met' if met else 'NOT met'}\n" + "\n".join(lost_lines))
    if args.write_docs:
        write_section("## Lighthouse", "\n".join([
            "## Lighthouse (bench/lighthouse_pages.py)", "",
            f"`{bench.command}` (`make bench-lighthouse`) on commit {info['source']}, "
            f"{dt.date.today().isoformat()}: Lighthouse {lh_version}, its default mobile settings (form factor "
            "mobile, simulated throttling: 150 ms RTT, 1.6 Mbit/s, CPU 4×), driving "
            f"{version} headless (`CHROME_PATH=/usr/bin/chromium`, `{' '.join(CHROME_FLAGS)}`). "
            f"{info['cpus']} CPUs ({info['cpu_model']}), load average before the run {info['load_before']}. "
            f"The demo seed; the cart page with one line, the tracking page of a placed order. "
            f"Median of {args.runs} audit{'s' if args.runs > 1 else ''} per page. Target: each score ≥ {TARGET} "
            f"({'met' if met else 'not met'}).", "", scores, "",
            *(["Audits below full marks in the last run:", "", *lost_lines, ""] if lost_lines else []), NOINDEX,
        ]))
    return 0 if met else 3


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if chromium_missing("lighthouse_pages.py"):
        return 2
    if not LIGHTHOUSE.exists():
        sys.stderr.write("bench/lighthouse_pages.py needs Lighthouse: npm ci --prefix bench/lighthouse "
                         "(make bench-lighthouse does it).\n")
        return 2
    return run(__file__, lambda bench: asyncio.run(audit_pages(args, bench)), needs=("httpx", "gateway"),
               target="bench-lighthouse", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

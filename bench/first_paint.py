"""First paint of the shop page on slow 4G: this source against a baseline revision, in one run.

Two stacks of the four apps (as bench/page_load.py starts them, each on its own SQLite files): this
source and ``--baseline REV`` (``git archive``), each with a shop of ``--products`` varieties with photos
(``page_load.seed_shop``). Chromium (Playwright) opens each shop page ``/s/{slug}`` as a phone with a
cold cache on DevTools' "Slow 4G", the two stacks in turn ``--runs`` times: first and largest contentful
paint, bytes. Targets (issue 21.4): FCP ≤ 800 ms, LCP ≤ 2,500 ms for this source.

    .venv/bin/python bench/first_paint.py --runs 5 --baseline f03d339

bench/README.md has every option; docs/performance.md ("First paint in one round trip") the figures.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path

if Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:  # run as a script: the repository
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # first, or bench/gateway.py shadows `gateway`

from bench import harness as h  # noqa: E402
from bench import page_load as pl  # noqa: E402

FCP_TARGET_MS, LCP_TARGET_MS = 800.0, 2500.0


def parse_args(argv: list[str] | None = None):
    p = h.Options(__doc__)
    p.add_argument("--runs", "-n", type=int, default=5, help="cold loads of each stack on slow 4G")
    p.add_argument("--products", type=int, default=20, help="active varieties in each shop, each with a photo")
    p.add_argument("--baseline", required=True, metavar="REV", help="the revision to compare with")
    args = p.parse_args(argv)
    if args.runs < 1 or args.products < 1:
        p.error("--runs and --products must be at least 1")
    return args


async def measure_both(args, bench: h.Bench) -> dict:
    baseline = h.baseline_source(args.baseline, bench.tmp / "baseline-source")
    urls = {}
    for name, source in (("this", h.REPO), (f"baseline {baseline}", bench.tmp / "baseline-source")):
        run_dir = bench.tmp / name.split()[0]
        run_dir.mkdir()
        dbs = h.Databases("sqlite", run_dir)
        apps = await asyncio.to_thread(h.start_apps, bench.procs, bench.python, run_dir, dbs.urls,
                                       env={"PYTHONPATH": str(source)})
        shop = await pl.seed_shop(apps["gateway"], args.products)
        urls[name] = apps["gateway"] + "/" + shop.url.split("/", 3)[3]
    bench.header("first paint", software=f"{pl.chromium_version()} headless (Playwright)",
                 baseline=f"{baseline} ({args.baseline})",
                 page=f"the shop page of {args.products} varieties with a photo each, on each stack",
                 network=f"{pl.SLOW_4G.describe()} (Chrome DevTools' Slow 4G preset); a new browser context per "
                         f"load; phone {pl.PHONE['viewport']['width']}×{pl.PHONE['viewport']['height']} at "
                         f"{pl.PHONE['device_scale_factor']}×")
    from playwright.async_api import async_playwright

    loads: dict[str, list[pl.Load]] = {name: [] for name in urls}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(pl.CHROMIUM), headless=True, args=pl.CHROMIUM_ARGS)
        try:
            for url in urls.values():  # unmeasured: an app's first request pays for imports and caches
                await pl.load_once(browser, url, pl.UNTHROTTLED, 1)
            for run in range(1, args.runs + 1):
                for name, url in urls.items():
                    x = await pl.load_once(browser, url, pl.SLOW_4G, 1)
                    loads[name].append(x)
                    print(f"  run {run}/{args.runs} {name:<16} FCP {pl.fmt_ms(x.fcp_ms)}  LCP {pl.fmt_ms(x.lcp_ms)}  "
                          f"{x.bytes / 1024:7.1f} KiB in {x.requests} requests"
                          + (f"  FAILED: {'; '.join(x.failed)}" if x.failed else ""), flush=True)
        finally:
            await browser.close()
    bench.procs.check_alive()
    rows, figures = [], {}
    for name, xs in loads.items():
        fcp, lcp = [x.fcp_ms for x in xs if x.fcp_ms], [x.lcp_ms for x in xs if x.lcp_ms]
        figures[name] = {"fcp_ms": statistics.median(fcp), "fcp_max_ms": max(fcp), "lcp_ms": statistics.median(lcp),
                         "lcp_max_ms": max(lcp), "bytes": statistics.median(x.bytes for x in xs)}
        f = figures[name]
        rows.append([name, f"{f['fcp_ms']:.0f} ({f['fcp_max_ms']:.0f})", f"{f['lcp_ms']:.0f} ({f['lcp_max_ms']:.0f})",
                     f"{f['bytes'] / 1024:.0f} KiB"])
    print()
    print(h.table(["stack", "FCP ms, median (max)", "LCP ms, median (max)", "transferred"], rows))
    this = figures["this"]
    print(f"\nthis source on slow 4G: FCP {this['fcp_ms']:.0f} ms (target ≤ {FCP_TARGET_MS:.0f}: "
          f"{'met' if this['fcp_ms'] <= FCP_TARGET_MS else 'NOT met'}), LCP {this['lcp_ms']:.0f} ms (target ≤ "
          f"{LCP_TARGET_MS:.0f}: {'met' if this['lcp_ms'] <= LCP_TARGET_MS else 'NOT met'})")
    return {"date": h.now(), "command": bench.command, "machine": bench.info, "baseline": baseline, "runs": args.runs,
            "figures": figures, "loads": {n: [x.__dict__ for x in xs] for n, xs in loads.items()}}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if pl.chromium_missing("first_paint.py"):
        return 2

    def body(bench: h.Bench) -> int:
        h.write_json(args.json, asyncio.run(measure_both(args, bench)))
        return 0

    return h.run(__file__, body, needs=("playwright", "gateway"), target="bench-page", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

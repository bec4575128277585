"""How fast is search? p50 and p99 of ``GET /api/v1/products?q=…`` at 1k, 10k and 100k products.

Per backend (SQLite, PostgreSQL) the catalog's database filled with SQL with Vietnamese varieties, the
catalog as its own process, one client sending a mix of searches: p50/p99 per size and their ratio to
the targets (p50 ≤ 10 ms, p99 ≤ 40 ms at 100k on PostgreSQL); ``--baseline REV``: at each size also that
revision's catalog on a database of its own, filled alike; writes docs/performance.md and docs/search-latency.png.

How to run it and every option: bench/README.md; the figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

if __name__ == "__main__":  # the repository first, or bench/gateway.py shadows `gateway`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench import harness as h  # noqa: E402
from bench.gateway import start_catalog  # noqa: E402

PLOT = h.REPO / "docs" / "search-latency.png"
SECTION = "## Search (bench/search.py)"
TARGET_P50_MS, TARGET_P99_MS, TARGET_SIZE = 10.0, 40.0, 100_000  # on PostgreSQL
SHOPS, SEED = 300, 20261127  # the shops the products are spread over; the seed of the data and the request order

# The words the varieties and shops are made of (GENERA: name, category, weight; LABELS: variant, price factor;
# PROVINCE_WEIGHTS: mostly the Mekong Delta, where the nurseries are), kept in bench/words.json.
GENERA, COLOURS, ORIGINS, DESCRIPTORS, CULTIVARS, PLACES, BLOOMS, LABELS, SHOP_KINDS, SHOP_PEOPLE, PROVINCE_WEIGHTS = (
    h.WORDS[k] for k in ("genera", "colours", "origins", "descriptors", "cultivars", "places", "blooms", "labels",
                         "shop_kinds", "shop_people", "province_weights"))


def weighted(rng: random.Random, pairs):
    items, weights = zip(*pairs, strict=True)
    return rng.choices(items, weights)[0]


def variety_name(rng: random.Random) -> tuple[str, str]:
    genus, category = weighted(rng, [((g, c), w) for g, c, w in GENERA])
    if category == "supplies":
        return f"{genus} {rng.choice(['loại 1', '5 kg', '1 kg', 'cao cấp', 'size lớn'])}", category
    parts = [genus]
    if rng.random() < 0.55:
        parts.append(rng.choice(ORIGINS))
    if rng.random() < 0.8:
        parts.append(rng.choice(COLOURS))
    if rng.random() < 0.35:
        parts.append(rng.choice(DESCRIPTORS))
    if rng.random() < 0.2:
        parts.append(f"'{rng.choice(CULTIVARS)}'")
    return " ".join(parts), category


def description(rng: random.Random, name: str) -> str:
    sentences = [f"{name}: hoa {rng.choice(COLOURS)}, {rng.choice(BLOOMS)}.", f"Thích hợp trồng {rng.choice(PLACES)}.",
                 rng.choice(["Giao hàng toàn quốc.", "Nhận sỉ cho nhà vườn.", "Bao sống 7 ngày.",
                             f"Giống nhập từ {rng.choice(ORIGINS)}.", "Củ to, khỏe, đã ra rễ.", ""])]
    return " ".join(s for s in sentences if s)


def province_wards() -> dict[str, str]:
    from common.vietnam import province_name, wards

    return {code: ws[0]["code"] for code in PROVINCE_WEIGHTS if province_name(code) and (ws := wards(code))}


def make_shops(count: int, rng: random.Random) -> list[dict]:
    from services.catalog import search

    wards = province_wards()
    codes, now, shops = list(wards), dt.datetime.now(dt.UTC) - dt.timedelta(days=800), []
    weights = [PROVINCE_WEIGHTS[c] for c in codes]
    for i in range(1, count + 1):
        province = rng.choices(codes, weights)[0]
        name = f"{rng.choice(SHOP_KINDS)} {rng.choice(SHOP_PEOPLE)}"
        kind = rng.choice(["Vườn gia đình", "Trại giống", "Nhà vườn nhỏ"])
        desc = f"{kind} chuyên {rng.choice(['súng', 'sen', 'thủy sinh', 'sen súng'])}."
        shops.append({
            "id": i, "owner_id": f"bench-grower-{i}", "slug": f"bench-shop-{i}", "name": name, "description": desc,
            "province_code": province, "ward_code": wards[province], "street": f"Ấp {rng.randint(1, 9)}",
            "phone": f"+8491{i:07d}", "delivery": json.dumps({"pickup": True, "flat_fee": 30000}),
            "min_order_value": 0, "search_text": search.shop_document(name, desc, province),
            "created_at": now + dt.timedelta(hours=i), "updated_at": now + dt.timedelta(hours=i),
        })
    return shops


def make_products(start_id: int, count: int, shops: list[dict], rng: random.Random,
                  variant_start: int) -> tuple[list[dict], list[dict]]:
    from services.catalog import search

    products, variants, base = [], [], dt.datetime.now(dt.UTC) - dt.timedelta(days=700)
    for pid in range(start_id, start_id + count):
        shop = shops[rng.randrange(len(shops))]
        name, category = variety_name(rng)
        desc = description(rng, name)
        roll = rng.random()
        status = "draft" if roll < 0.04 else "archived" if roll < 0.07 else "active"
        base_price = rng.choice([15, 20, 25, 30, 35, 45, 55, 60, 80, 90, 120, 150, 200, 250, 350, 500]) * 1000
        labels = rng.sample(LABELS, rng.choice([1, 1, 2, 2, 3]))
        rows = [{"id": variant_start + len(variants) + pos, "product_id": pid, "position": pos, "label": label,
                 "retail_price": int(round(base_price * factor, -3)), "wholesale_tiers": "[]", "min_order_quantity": 1,
                 "stock": 0 if rng.random() < 0.12 else rng.randint(1, 300), "low_stock_threshold": 5,
                 "weight_grams": 500, "archived": False} for pos, (label, factor) in enumerate(labels)]
        variants += rows
        search_name, search_text = search.product_documents(name, desc, shop["name"], shop["province_code"])
        created = base + dt.timedelta(seconds=pid * 300)
        products.append({
            "id": pid, "shop_id": shop["id"], "name": name, "description": desc, "category": category,
            "status": status, "search_name": search_name, "search_text": search_text,
            "min_price": min(r["retail_price"] for r in rows), "in_stock": any(r["stock"] > 0 for r in rows),
            "created_at": created, "updated_at": created,
        })
    return products, variants


def insert(dbs: h.Databases, table: str, rows: list[dict]) -> None:
    """``rows`` into the catalog's database: one ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""
    cols = list(rows[0])
    if dbs.backend == "sqlite":
        with contextlib.closing(sqlite3.connect(dbs.urls["catalog"].split("///", 1)[1])) as conn, conn:
            conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                             [[_sqlite_value(r[c]) for c in cols] for r in rows])
        return

    async def copy() -> None:
        import asyncpg

        conn = await asyncpg.connect(dbs.dsns["catalog"], timeout=10)
        try:
            await conn.copy_records_to_table(table, columns=cols, records=[tuple(r[c] for c in cols) for r in rows])
            await conn.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        finally:
            await conn.close()

    asyncio.run(copy())


def finish_load(dbs: h.Databases) -> None:
    """What a running catalog would have after a while: on SQLite the FTS index merged and ANALYZE; on
    PostgreSQL what autovacuum does after a bulk load (statistics, the GIN pending list merged)."""
    if dbs.backend != "sqlite":
        asyncio.run(h.pg_admin(dbs.dsns["catalog"], ["VACUUM ANALYZE"]))
        return
    with contextlib.closing(sqlite3.connect(dbs.urls["catalog"].split("///", 1)[1])) as conn, conn:
        conn.execute("INSERT INTO products_fts(products_fts) VALUES ('optimize')")
        conn.execute("ANALYZE")


def _sqlite_value(value):
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, dt.datetime) else value


QUERIES: list[tuple[str, dict]] = [
    ("common, accented", {"q": "súng"}), ("common, no accents", {"q": "sung"}),
    ("two common words", {"q": "hoa sung"}), ("upper case", {"q": "HOA SÚNG"}), ("colour", {"q": "sen trắng"}),
    ("colour, no accents", {"q": "sen trang"}), ("province / origin", {"q": "dong thap"}),
    ("moderate", {"q": "thủy trúc"}), ("rare cultivar", {"q": "queen of siam"}),
    ("rare, no accents", {"q": "bach tuyet"}), ("prefix", {"q": "hoa su"}), ("short prefix", {"q": "su"}),
    ("prefix, 2 words", {"q": "sen h"}), ("word + province", {"q": "sung", "province_code": "82"}),
    ("word + category + price", {"q": "sen", "category": "lotus", "min_price": 50000, "max_price": 300000}),
    ("in stock, by price", {"q": "sung", "in_stock": "true", "sort": "price_asc"}),
    ("by price, descending", {"q": "sen", "sort": "price_desc"}), ("three words", {"q": "súng thái đỏ"}),
    ("no match", {"q": "xương rồng"}), ("browse newest", {}),
    ("browse by price + category", {"sort": "price_asc", "category": "water_lily"}),
    ("browse province, in stock", {"province_code": "92", "in_stock": "true"}),
]
SECOND_PAGES = [("page 2: common word", {"q": "sung"}), ("page 2: browse by price", {"sort": "price_asc"})]


@dataclass
class Measured:
    backend: str
    size: int
    stack: str = "this"  # or "baseline <commit>"
    latencies_ms: list[float] = field(default_factory=list)
    by_query: dict[str, list[float]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def pct(self, p: float, values: list[float] | None = None) -> float:
        return h.pct(values if values is not None else self.latencies_ms, p)


def measure(base: str, backend: str, size: int, rounds: int, stack: str) -> Measured:
    import httpx

    result = Measured(backend, size, stack)
    with httpx.Client(base_url=base, timeout=30) as client:
        urls = [(label, "/api/v1/products?" + urlencode(params)) for label, params in QUERIES]
        for label, params in SECOND_PAGES:
            first = client.get("/api/v1/products", params=params).json()
            if first.get("next_cursor"):
                urls.append((label, "/api/v1/products?" + urlencode({**params, "cursor": first["next_cursor"]})))
        for label, url in urls:  # warm-up, and a check that every query answers
            for _ in range(3):
                resp = client.get(url)
                if resp.status_code != 200:
                    raise h.BenchError(f"{url} answered {resp.status_code}: {resp.text[:300]}")
            result.hits[label] = len(resp.json()["items"])
        rng = random.Random(SEED)
        for _ in range(rounds):
            for label, url in rng.sample(urls, len(urls)):
                started = time.perf_counter()
                resp = client.get(url)
                elapsed = (time.perf_counter() - started) * 1000
                if resp.status_code != 200:
                    raise h.BenchError(f"{url} answered {resp.status_code}")
                result.latencies_ms.append(elapsed)
                result.by_query.setdefault(label, []).append(elapsed)
    return result


def table(results: list[Measured]) -> str:
    return h.table(["backend", "source", "products", "requests", "p50 (ms)", "p99 (ms)", f"p50 / {TARGET_P50_MS:g} ms",
                    f"p99 / {TARGET_P99_MS:g} ms"],
                   [[r.backend, r.stack, f"{r.size:,}", len(r.latencies_ms), f"{r.pct(50):.2f}", f"{r.pct(99):.2f}",
                     f"{r.pct(50) / TARGET_P50_MS:.2f}", f"{r.pct(99) / TARGET_P99_MS:.2f}"] for r in results], left=2)


def per_query_table(results: list[Measured]) -> str:
    largest = [r for r in results if r.size == max(x.size for x in results)]
    return h.table(["query", *(f"{r.backend}{'' if r.stack == 'this' else ', ' + r.stack} p50 / p99 (ms)"
                               for r in largest), "items"],
                   [[label, *(f"{r.pct(50, r.by_query[label]):.1f} / {r.pct(99, r.by_query[label]):.1f}"
                              for r in largest), largest[0].hits.get(label, 0)] for label in largest[0].by_query])


def verdict(results: list[Measured]) -> list[str]:
    """The ratios this ÷ baseline (with ``--baseline``), and this source on PostgreSQL at the targets' size."""
    out = [f"{r.backend} at {r.size:,}, this ÷ {b.stack}: p50 × {h.ratio(r.pct(50), b.pct(50)):.2f}, p99 × "
           f"{h.ratio(r.pct(99), b.pct(99)):.2f}" for r in results for b in results
           if r.stack == "this" != b.stack and (r.backend, r.size) == (b.backend, b.size)]
    for r in results:
        if r.size != TARGET_SIZE or r.backend != "PostgreSQL" or r.stack != "this":
            continue
        p50, p99 = r.pct(50), r.pct(99)
        ok = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS
        out.append(f"{r.backend} at {r.size:,}: p50 {p50:.2f} ms (target ≤ {TARGET_P50_MS:g}), "
                   f"p99 {p99:.2f} ms (target ≤ {TARGET_P99_MS:g}) → {'met' if ok else 'NOT met'}")
    return out


def plot(results: list[Measured], path: Path) -> None:
    with h.figure(path, (8, 5), title="Chợ Vườn search: GET /api/v1/products?q=… (bench/search.py)") as (ax,):
        for backend, colour in (("SQLite", "tab:blue"), ("PostgreSQL", "tab:orange")):
            rs = [r for r in results if r.backend == backend and r.stack == "this"]
            for q, style in ((50, "o-"), (99, "s--")):
                ax.plot([r.size for r in rs], [r.pct(q) for r in rs], style, color=colour, label=f"{backend} p{q}")
        for q, target, style in ((50, TARGET_P50_MS, ":"), (99, TARGET_P99_MS, "-.")):
            ax.axhline(target, color="grey", linestyle=style, linewidth=1)
            ax.text(results[0].size, target, f" p{q} target {target:g} ms", va="bottom", fontsize=8, color="grey")
        ax.set(xscale="log", xlabel="products in the catalog", ylim=(0, None),
               ylabel="latency per search (ms), one client, direct to the catalog")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = h.Options(__doc__, pg="--pg-admin-dsn", env="--app-env")
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="products, ascending")
    p.add_argument("--backends", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    p.add_argument("--rounds", type=int, default=40, help="times each query is sent, after 3 unmeasured")
    p.add_argument("--baseline", metavar="REV", help="at each size also the catalog of this git revision's source")
    p.add_argument("--no-write", action="store_true", help="do not write docs/performance.md and the plot")
    args = p.parse_args(argv)
    if args.sizes != sorted(args.sizes) or args.sizes[0] < 1:
        p.error("--sizes must be positive and ascending (each size adds to the one before)")
    return args


def run_backend(kind: str, args: argparse.Namespace, bench: h.Bench, env: dict[str, str],
                stacks: dict[str, dict[str, str]]) -> list[Measured]:
    """At each size, the catalog of every stack (its source: ``stacks``) in turn, each on a database of its own
    (made by its own migrations), filled with the same rows."""
    name, dbs, results = "SQLite" if kind == "sqlite" else "PostgreSQL", {}, []
    for stack, source in stacks.items():
        folder = bench.tmp / stack.split()[0]
        folder.mkdir(exist_ok=True)
        dbs[stack] = h.Databases("sqlite" if kind == "sqlite" else "postgres", folder, args.pg_admin_dsn,
                                 prefix="cv_bench_search", apps=("catalog",))  # a run of its own: others may run
        if not args.keep:
            bench.cleanups.append(dbs[stack].drop)
        url = dbs[stack].urls["catalog"]
        print(f"[{name}, {stack}] migrating {url.split('@')[-1]}", flush=True)
        out = subprocess.run([bench.python, "-m", "services.catalog", "migrate"], cwd=bench.tmp, capture_output=True,
                             text=True, env={**env, **source, "CATALOG_DATABASE_URL": url})
        if out.returncode != 0:
            raise h.BenchError(f"migrations failed on {name}, {stack}:\n{out.stdout}{out.stderr}")
    rng = random.Random(SEED)
    shops = make_shops(SHOPS, rng)
    for d in dbs.values():
        insert(d, "shops", shops)
    loaded, next_variant = 0, 1
    for size in args.sizes:
        started = time.perf_counter()
        while loaded < size:
            n = min(10_000, size - loaded)
            products, variants = make_products(loaded + 1, n, shops, rng, next_variant)
            for d in dbs.values():
                insert(d, "products", products)
                insert(d, "variants", variants)
            loaded += n
            next_variant += len(variants)
            print(f"[{name}] seeding: {loaded:>7,} / {size:,} products "
                  f"({time.perf_counter() - started:5.1f} s)", flush=True)
        for d in dbs.values():
            finish_load(d)
        print(f"[{name}] {size:,} products loaded in {time.perf_counter() - started:.1f} s", flush=True)
        for stack, source in stacks.items():
            (port,) = h.free_ports(1)
            start_catalog(bench.procs, bench.python, bench.tmp, port,
                          {**env, **source, "CATALOG_DATABASE_URL": dbs[stack].urls["catalog"]})
            h.wait_ready(bench.procs, f"http://127.0.0.1:{port}/readyz", timeout=300)
            result = measure(f"http://127.0.0.1:{port}", name, size, args.rounds, stack)
            bench.procs.stop_all()
            results.append(result)
            print(f"[{name}, {stack}] {size:>7,} products: p50 {result.pct(50):6.2f} ms  p99 {result.pct(99):6.2f} ms "
                  f"({len(result.latencies_ms)} requests)", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def body(bench: h.Bench) -> int:
        env = h.base_env(CATALOG_RESERVATION_SWEEP_INTERVAL="0", **h.env_pairs(args.app_env))
        stacks = h.stacks(bench.tmp, args.baseline)
        m = bench.info
        pg = asyncio.run(h.pg_admin(args.pg_admin_dsn, [])) if "postgresql" in args.backends else None
        software = f"SQLite {sqlite3.sqlite_version}" + (f", PostgreSQL {pg}" if pg else "")
        bench.header("search bench", software=software, baseline=f"{list(stacks)[-1]} ({args.baseline})" if
                     args.baseline else None, catalog=" ".join(args.app_env) or None, client=(
            f"one httpx client, one request at a time, keep-alive; {len(QUERIES) + len(SECOND_PAGES)} queries × "
            f"{args.rounds} rounds in shuffled order after 3 unmeasured rounds"))
        results: list[Measured] = []
        for kind in args.backends:
            results += run_backend(kind, args, bench, env, stacks)
        print("\n" + "\n\n".join([table(results), per_query_table(results), "\n".join(verdict(results))]))
        bench.write_json(args, results=results)  # every latency, per query too
        if not args.no_write:
            plot(results, PLOT)
            h.write_section(SECTION, keep_subsections=True, text="\n".join([
                SECTION, "", f"Date: {h.now()}  ",
                f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, {m['memory']}, {m['kernel']}, Python {m['python']}, "
                f"{software}; load average before the run {m['load_before']}, after {h.load_average()}  ",
                f"Command: `{bench.command}`", "",
                "The catalog alone (one uvicorn worker" + "".join(f", `{item}`" for item in args.app_env)
                + (f"; and {list(stacks)[-1]}'s in turn, on a database of its own" if args.baseline else "")
                + f") on a database filled with SQL over {SHOPS} shops; one httpx "
                f"client, {len(QUERIES) + len(SECOND_PAGES)} kinds of request × {args.rounds} rounds in shuffled "
                "order, one at a time; latency request sent → reply read (method: bench/README.md).", "",
                table(results), "",
                f"Targets at {TARGET_SIZE:,} products: p50 ≤ {TARGET_P50_MS:g} ms, p99 ≤ {TARGET_P99_MS:g} ms.", "",
                *[f"- {line}" for line in verdict(results)], "",
                "By query at the largest size (p50 / p99, ms; items on the page):", "", per_query_table(results), "",
                "![search latency](search-latency.png)",
            ]))
            print(f"\nwrote {h.PERFORMANCE_MD.relative_to(h.REPO)} and {PLOT.relative_to(h.REPO)}")
        return 0

    return h.run(__file__, body, target="bench-search", keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())

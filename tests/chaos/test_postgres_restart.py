"""Chaos: PostgreSQL restarts while buyers place orders through the gateway. The apps are not
restarted: while the database is down every request fails at once with a 503 problem+json (none
hangs, none is a 500), readiness says not ready, and once it is back orders are placed again. No
order is half written and the stock adds up, as after any crash.

The database is a private server made for this test (initdb in a temporary folder, its own port),
so the machine's shared PostgreSQL is never stopped. Needs root and the server binaries."""

from __future__ import annotations

import asyncio
import random

import httpx

from tests.apps import make_app
from tests.chaos.market import (
    GATEWAY_LIMITS,
    Buyers,
    check_ledger,
    gateway_client,
    listed_codes,
    open_nursery,
    settled_ledger,
)
from tests.support.databases import APPS, require
from tests.support.postgres import PrivatePostgres, unavailable
from tests.support.servers import serve_in_thread

BUYERS = 10
OUTAGE = 4.0  # seconds between the server's stop and its start
RESERVATION_TTL = 20  # longer than the outage and the restart on a loaded machine
SLOWEST_ERROR = 12.0  # seconds: a request during the outage fails well within this, it does not hang


async def test_services_recover_from_a_postgres_restart_by_themselves() -> None:
    why = unavailable()
    require(why is None, why or "")
    with PrivatePostgres() as pg:
        await pg.create_databases([f"cv_{app}" for app in APPS])
        urls = {app: pg.url(f"cv_{app}") for app in APPS}
        with serve_in_thread(make_app("notify", urls)) as notify_url:
            catalog = make_app("catalog", urls, notify_url=notify_url, reservation_ttl=RESERVATION_TTL,
                               reservation_sweep_interval=0.5, relay_poll_interval=0.5)
            with serve_in_thread(catalog) as catalog_url:
                orders = make_app("orders", urls, catalog_url=catalog_url, notify_url=notify_url,
                                  reconcile_interval=0.5, relay_poll_interval=0.5)
                with serve_in_thread(orders) as orders_url:
                    gateway = make_app("gateway", urls, catalog_url=catalog_url, orders_url=orders_url,
                                       notify_url=notify_url, rate_limits=GATEWAY_LIMITS)
                    with serve_in_thread(gateway) as gateway_url:
                        async with gateway_client(gateway_url) as gw, \
                                httpx.AsyncClient(timeout=30) as direct:
                            product = await open_nursery(gw)
                            variants = product["variants"]
                            product_path = f"/api/v1/products/{product['id']}"
                            buyers = Buyers(gw, variants, BUYERS)
                            load = buyers.start(seed=random.random())
                            try:
                                await buyers.wait_successes(10, since=0, timeout=60)
                                await asyncio.to_thread(pg.stop, "fast")
                                down_at = buyers.now()
                                await asyncio.sleep(OUTAGE / 2)
                                # While it is down: not ready, and a reader gets a 503 too.
                                during = {name: await direct.get(f"{url}/readyz")
                                          for name, url in (("catalog", catalog_url), ("orders", orders_url),
                                                            ("notify", notify_url))}
                                product_down = await gw.get(product_path)
                                await asyncio.sleep(OUTAGE / 2)
                                up_from = buyers.now()
                                await asyncio.to_thread(pg.start)
                                up_at = buyers.now()
                                await buyers.wait_successes(10, since=up_at, timeout=60)
                            finally:
                                buyers.stop.set()
                                await load

                            for name, resp in during.items():
                                assert resp.status_code == 503, f"{name} /readyz during the outage: {resp.text}"
                            assert product_down.status_code == 503, product_down.text
                            assert product_down.headers["content-type"].startswith("application/problem+json")
                            for name, url in (("catalog", catalog_url), ("orders", orders_url),
                                              ("notify", notify_url)):
                                assert (await direct.get(f"{url}/readyz")).status_code == 200, f"{name} ready again"
                            assert (await gw.get(product_path)).status_code == 200

                            outage = buyers.statuses(down_at + 0.5, up_from)
                            assert outage[503] > 0 and not outage[201], f"during the outage: {outage}"
                            unclean = buyers.unclean()
                            assert not unclean, f"{len(unclean)} replies were not 503 problem+json: {unclean[:3]}"
                            assert set(buyers.statuses()) <= {201, 503}, buyers.statuses()
                            slowest = max(r.seconds for r in buyers.replies if r.status != 201)
                            assert slowest < SLOWEST_ERROR, f"an error took {slowest:.1f} s: a request hung"

                            assert set(buyers.placed) <= await listed_codes(gw)
                            ledger = await settled_ledger(urls, timeout=RESERVATION_TTL + 30)
                            check_ledger(ledger, variants, buyers.placed)

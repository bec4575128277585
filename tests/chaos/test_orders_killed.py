"""Chaos: the orders service is killed (SIGKILL) while 20 buyers place orders through the gateway,
then started again while they keep going. Every order that was answered 2xx is still there, and the
stock adds up for every variant: stock + reserved + sold = initial, once the catalog's sweeper has
released what the dead process reserved but never stored (a short reservation TTL for the test).

Orders runs as a real process (``python -m services.orders serve``); the catalog, notify and the
gateway run in threads of the test."""

from __future__ import annotations

import asyncio
import random

from tests.apps import PUBLIC_KEY, make_app
from tests.chaos.market import (
    GATEWAY_LIMITS,
    Buyers,
    check_ledger,
    gateway_client,
    listed_codes,
    open_nursery,
    settled_ledger,
)
from tests.support.processes import AppProcess
from tests.support.servers import serve_in_thread

BUYERS = 20
# Seconds. Longer than the restart takes on a loaded machine: a stored order's reservation must not
# expire before the restarted reconciler commits it (if it does, the order is marked stock-lost).
RESERVATION_TTL = 40


async def test_orders_killed_mid_load_loses_no_order_and_no_stock(db_urls, tmp_path) -> None:
    notify = make_app("notify", db_urls)
    with serve_in_thread(notify) as notify_url:
        catalog = make_app("catalog", db_urls, notify_url=notify_url, reservation_ttl=RESERVATION_TTL,
                           reservation_sweep_interval=0.5)
        with serve_in_thread(catalog) as catalog_url:
            orders = AppProcess("services.orders", {
                "ORDERS_DATABASE_URL": db_urls["orders"], "ORDERS_CATALOG_URL": catalog_url,
                "ORDERS_NOTIFY_URL": notify_url, "ORDERS_RECONCILE_INTERVAL": "0.5",
                "ORDERS_RELAY_POLL_INTERVAL": "0.5", "JWT_PUBLIC_KEY": PUBLIC_KEY}, tmp_path)
            with orders:
                gateway = make_app("gateway", db_urls, catalog_url=catalog_url, orders_url=orders.url,
                                   notify_url=notify_url, rate_limits=GATEWAY_LIMITS)
                with serve_in_thread(gateway) as gateway_url:
                    async with gateway_client(gateway_url) as gw:
                        product = await open_nursery(gw)
                        variants = product["variants"]
                        buyers = Buyers(gw, variants, BUYERS)
                        rng = random.Random()
                        load = buyers.start(seed=rng.random())
                        try:
                            await buyers.wait_successes(20, since=0, timeout=60)
                            await asyncio.sleep(rng.uniform(0, 2))  # a random moment mid-load
                            orders.kill()
                            killed_at = buyers.now()
                            await asyncio.sleep(0.5)  # buyers meet a dead service for a moment
                            await asyncio.to_thread(orders.start)
                            restarted_at = buyers.now()
                            await buyers.wait_successes(20, since=restarted_at, timeout=60)
                        finally:
                            buyers.stop.set()
                            await load
                        assert buyers.successes_since(0) > buyers.successes_since(killed_at), "orders before the kill"
                        assert orders.starts == 2
                        assert restarted_at - killed_at < RESERVATION_TTL - 5, (
                            f"the restart took {restarted_at - killed_at:.0f} s: too slow a machine for this "
                            f"test's reservation TTL ({RESERVATION_TTL} s)")

                        assert set(buyers.placed) <= await listed_codes(gw), "every 201 is listed after restart"
                        ledger = await settled_ledger(db_urls, timeout=RESERVATION_TTL + 30)
                        check_ledger(ledger, variants, buyers.placed)
                        unclean = buyers.unclean()
                        assert not unclean, f"{len(unclean)} replies were not problem+json: {unclean[:3]}"

"""Metrics beyond HTTP move with what they measure: the outbox backlog while notify is down, its dead
letters, the NATS consumer's lag while it is stopped, orders by state, reservations held, the mail and
webhook queues and their failures, the open live streams (common/observability.py's probes)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import uuid

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.apps import make_app
from tests.events.stack import GROWER, ORDER, stack
from tests.support.servers import free_port, serve_in_thread

ORDERS_OUTBOX = ("outbox_backlog", (("service", "orders"),))


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple], float]:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


async def until(client: httpx.AsyncClient, what: str, check, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        metrics = await scrape(client)
        try:
            if check(metrics):
                return metrics
        except KeyError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s: {metrics}")
        await asyncio.sleep(0.2)


def value(metrics: dict, name: str, **labels) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


async def test_notify_down_grows_the_outbox_backlog_then_its_dead_letters(db_urls) -> None:
    """Events by HTTP push to a notify that does not answer: the orders outbox backlog and its oldest
    age grow; once the relay gives up on them they are dead letters."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    catalog_app = make_app("catalog", db_urls, reservation_sweep_interval=0, notify_url=nowhere)
    with serve_in_thread(catalog_app) as catalog_url:
        orders_app = make_app("orders", db_urls, catalog_url=catalog_url, notify_url=nowhere, reconcile_interval=1,
                              relay_poll_interval=0.2)
        with serve_in_thread(orders_app) as orders_url:
            async with httpx.AsyncClient(base_url=orders_url, timeout=10) as orders, \
                    httpx.AsyncClient(base_url=catalog_url, timeout=10) as catalog:
                from tests.catalog.helpers import BANK, PRODUCT, SHOP

                assert (await catalog.post("/api/v1/shops", json={**SHOP, "bank": BANK},
                                           headers=GROWER)).status_code == 201
                product = (await catalog.post("/api/v1/products", json=PRODUCT, headers=GROWER)).json()
                before = await scrape(orders)
                assert value(before, "outbox_backlog", service="orders") == 0
                assert value(before, "orders_by_state", status="placed") == 0
                for _ in range(3):
                    resp = await orders.post("/api/v1/orders", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
                        **ORDER, "lines": [{"variant_id": product["variants"][0]["id"], "quantity": 2}]})
                    assert resp.status_code == 201, resp.text
                grown = await until(orders, "the backlog and its age grow",
                                    lambda m: value(m, "outbox_backlog", service="orders") == 3
                                    and value(m, "outbox_oldest_age_seconds", service="orders") > 0.5)
                assert value(grown, "orders_by_state", status="placed") == 3
                assert value(grown, "outbox_dead_letters", service="orders") == 0
                orders_app.state.relay.max_attempts = 1  # give up at the next try
                # The probe's counts are read one after the other: wait for a scrape that saw the last one die.
                dead = await until(orders, "the events dead-lettered",
                                   lambda m: value(m, "outbox_dead_letters", service="orders") == 3
                                   and value(m, "outbox_backlog", service="orders") == 0)
                assert value(dead, "outbox_oldest_age_seconds", service="orders") == 0
                # The catalog's own outbox is empty; its reservations were committed by the reconciler.
                settled = await until(catalog, "the reservations committed",
                                      lambda m: value(m, "catalog_reservations_held") == 0)
                assert value(settled, "outbox_backlog", service="catalog") == 0


async def test_reservations_held_count_until_committed(db_urls) -> None:
    app = make_app("catalog", db_urls, reservation_sweep_interval=0)
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as catalog:
            from tests.catalog.helpers import BANK, PRODUCT, SHOP

            shop = (await catalog.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=GROWER)).json()
            product = (await catalog.post("/api/v1/products", json=PRODUCT, headers=GROWER)).json()
            service = {"X-Service-Token": app.state.settings.service_token.get_secret_value()}
            for i in range(2):
                resp = await catalog.post("/internal/reservations", headers=service, json={
                    "id": f"r-{i}-{uuid.uuid4().hex[:8]}", "shop_id": shop["id"], "payment_method": "cod",
                    "lines": [{"variant_id": product["variants"][0]["id"], "quantity": 1}]})
                assert resp.status_code in (200, 201), resp.text
            assert value(await scrape(catalog), "catalog_reservations_held") == 2
            assert value(await scrape(catalog), "catalog_reservations_held_expired") == 0


NO_EMAIL = {"name": "Anh Tư", "phone": "0987 654 321"}


async def test_a_stopped_consumer_shows_its_lag_and_notify_its_queues(db_urls) -> None:
    """NATS: notify's consumer stopped, the events wait on the stream (notify_nats_consumer_pending);
    a webhook endpoint that does not answer fills the webhook queue and counts failures; a mail the
    SMTP server cannot take, the mail queue; an open stream is counted while open."""
    nowhere = free_port()
    async with stack(db_urls, "nats", smtp_url=f"smtp://127.0.0.1:{nowhere}", webhooks_allow_loopback=True) as s:
        notify_app = s.apps["notify"]
        await asyncio.wait_for(notify_app.state.nats_ready.wait(), 10)
        hook = await s.notify.post("/api/v1/webhooks", headers=GROWER, json={
            "url": f"http://127.0.0.1:{nowhere}/hook", "event_types": ["order.placed"]})
        assert hook.status_code == 201, hook.text
        first = await until(s.notify, "the consumer's figures", lambda m: value(m, "notify_nats_consumer_pending") == 0)
        failures_before = first.get(("notify_webhook_failures_total", (("outcome", "retry"),)), 0)
        assert value(first, "notify_webhook_queue", state="failed") == 0
        assert value(first, "notify_live_streams") == 0

        # A webhook that fails: queued, tried, failed, counted. (Guests without an email: no buyer's mail,
        # so that the mail queue below holds exactly the one mail this test sends.)
        assert (await s.place(contact=NO_EMAIL)).status_code == 201
        failed = await until(s.notify, "the webhook try failed",
                             lambda m: value(m, "notify_webhook_queue", state="failed") == 1)
        assert failed[("notify_webhook_failures_total", (("outcome", "retry"),))] == failures_before + 1

        # The consumer stopped: the next events wait on the stream.
        consumer = notify_app.state.consumer  # on the notify server's own loop, in its thread
        stopped = threading.Event()

        def stop() -> None:
            consumer.add_done_callback(lambda _: stopped.set())
            consumer.cancel()

        consumer.get_loop().call_soon_threadsafe(stop)
        assert await asyncio.to_thread(stopped.wait, 10)
        for _ in range(2):
            assert (await s.place(contact=NO_EMAIL)).status_code == 201
        await until(s.notify, "the consumer's lag", lambda m: value(m, "notify_nats_consumer_pending") == 2)
        assert value(await scrape(s.orders), "orders_by_state", status="placed") == 3

        # A mail the SMTP server cannot take (none listens there): pending, its failure counted.
        mail = await s.notify.post("/internal/mail", headers={
            "X-Service-Token": notify_app.state.settings.service_token.get_secret_value()}, json={
            "id": str(uuid.uuid4()), "recipient": "tu@example.vn", "template": "password_reset",
            "context": {"name": "Tư", "link": "https://example.vn/reset/abc", "expires_minutes": 10}})
        assert mail.status_code == 202, mail.text
        mailed = await until(s.notify, "the mail failed", lambda m: m.get(
            ("notify_mail_failures_total", (("outcome", "retry"),)), 0) >= 1)
        assert value(mailed, "notify_mail_queue", state="pending") == 1

        # An open live stream, counted while it is open.
        async def listen() -> None:
            async with s.notify.stream("GET", "/api/v1/notifications/stream", headers=GROWER) as resp:
                async for _ in resp.aiter_bytes():
                    pass

        listener = asyncio.create_task(listen())
        try:
            await until(s.notify, "the stream counted", lambda m: value(m, "notify_live_streams") == 1)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await listener
        await until(s.notify, "the stream closed", lambda m: value(m, "notify_live_streams") == 0)
        assert not math.isnan(value(await scrape(s.notify), "notify_nats_dead_letters"))

"""NATS as a cluster would run it: the stream's limits and replica count are settings applied when the
stream is made and when they change; EVENT_BUS_URL takes several servers; two notify replicas share
one durable consumer, each event handled once, in the stream's order (NOTIFY_EVENTS_IN_FLIGHT=1)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from common.bus import Names, NatsPublisher, StreamLimits, connect_nats, ensure_stream
from services.notify.events.nats_consumer import DURABLE
from services.orders.settings import OrdersSettings
from tests.apps import make_app
from tests.events.stack import NATS_URL, drop_stream, nats_namespace
from tests.events.test_stream_wake import GROWER_ID, placed
from tests.support.auth import auth
from tests.support.servers import free_port, serve_in_thread


def test_the_stream_limits_are_settings_read_under_one_name(monkeypatch) -> None:
    monkeypatch.setenv("EVENT_STREAM_MAX_AGE", "86400")
    monkeypatch.setenv("EVENT_STREAM_MAX_BYTES", str(64 << 20))
    monkeypatch.setenv("EVENT_STREAM_REPLICAS", "3")
    limits = OrdersSettings().event_names().limits
    assert limits == StreamLimits(86400.0, 64 << 20, 3)


async def test_the_stream_is_made_with_its_limits_and_brought_to_new_ones() -> None:
    namespace = await nats_namespace()
    # The first server named is down: the client goes on to the next one of the list.
    nc = await connect_nats(f"nats://127.0.0.1:{free_port()},{NATS_URL}", "test-limits")
    try:
        js = nc.jetstream(timeout=5)
        await ensure_stream(js, Names(namespace, StreamLimits(max_age=7200, max_bytes=8 << 20, replicas=1)))
        config = (await js.stream_info(Names(namespace).stream)).config
        assert (config.max_age, config.max_bytes, config.num_replicas) == (7200, 8 << 20, 1)
        await ensure_stream(js, Names(namespace, StreamLimits(max_age=3600, max_bytes=4 << 20, replicas=1)))
        config = (await js.stream_info(Names(namespace).stream)).config
        assert (config.max_age, config.max_bytes) == (3600, 4 << 20)
    finally:
        await nc.close()
        await drop_stream(namespace)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_notify_replicas_share_the_consumer_each_event_once_in_order(db_urls) -> None:
    namespace = await nats_namespace()
    settings = {"event_bus_url": NATS_URL, "event_namespace": namespace}
    first, second = make_app("notify", db_urls, **settings), make_app("notify", db_urls, **settings)
    codes = [f"CV-ORDER-{i:03d}" for i in range(30)]
    try:
        with serve_in_thread(first) as url, serve_in_thread(second):
            for app in (first, second):
                await asyncio.wait_for(app.state.nats_ready.wait(), 15)
            publisher = NatsPublisher(NATS_URL, "test", Names(namespace))
            try:
                for code in codes:
                    await publisher.publish(placed(code))
            finally:
                await publisher.aclose()
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                for _ in range(200):
                    items = (await client.get("/api/v1/notifications", params={"limit": 100},
                                              headers=auth(GROWER_ID))).json()["items"]
                    if len(items) >= len(codes):
                        break
                    await asyncio.sleep(0.1)
            # Newest first: oldest first they are the events' order; each once.
            seen = [next(c for c in codes if c in str(item)) for item in reversed(items)]
            assert seen == codes
            js = (await connect_nats(NATS_URL, "test-info")).jetstream()
            info = await js.consumer_info(Names(namespace).stream, DURABLE)
            assert info.config.max_ack_pending == 1 and info.num_pending == 0
            await js._nc.close()
    finally:
        await drop_stream(namespace)

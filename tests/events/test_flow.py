"""Events end to end: an order placed lands in the grower's inbox, live, once, over HTTP push and
over NATS JetStream."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from common.events import Envelope
from tests.events.stack import GROWER, stack

TRANSPORTS = ["http", "nats"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_new_order_in_the_inbox_within_a_second(db_urls, transport: str) -> None:
    async with stack(db_urls, transport) as s:
        await s.place(quantity=1, variant=1)  # warm up the path (connections, the NATS consumer)
        await s.wait_inbox(1)
        placed = await s.place(quantity=3)
        assert placed.status_code == 201, placed.text
        started = time.monotonic()
        inbox = await s.wait_inbox(2, timeout=5)
        elapsed = time.monotonic() - started
        newest = inbox["items"][0]
        assert newest["title"].startswith(f"Đơn mới {placed.json()['code']}")
        assert "150.000" in newest["title"]
        assert inbox["unread_count"] == 2
        assert elapsed < 1.0, f"the order took {elapsed:.2f}s to reach the inbox"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stream_pushes_live_and_resumes_from_last_event_id(db_urls, transport: str) -> None:
    async with stack(db_urls, transport) as s:
        received: list[dict] = []

        async def listen(headers: dict, count: int) -> list[tuple[str, str]]:
            got = []
            async with s.notify.stream("GET", "/api/v1/notifications/stream", headers=headers,
                                       timeout=httpx.Timeout(10)) as resp:
                assert resp.headers["content-type"].startswith("text/event-stream")
                event_id = None
                async for line in resp.aiter_lines():
                    if line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("data: "):
                        got.append((event_id, line[6:]))
                        if len(got) == count:
                            return got
            return got

        listener = asyncio.create_task(listen(GROWER, 1))
        await asyncio.sleep(0.5)
        first = (await s.place(quantity=3)).json()
        live = await asyncio.wait_for(listener, 5)
        assert first["code"] in live[0][1]
        # Disconnected; two orders arrive meanwhile; reconnecting with Last-Event-ID misses nothing.
        second = (await s.place(quantity=4)).json()
        third = (await s.place(quantity=5)).json()
        await s.wait_inbox(3)
        resumed = await asyncio.wait_for(listen({**GROWER, "Last-Event-ID": live[0][0]}, 2), 5)
        assert [second["code"] in resumed[0][1], third["code"] in resumed[1][1]] == [True, True]
        received.extend(resumed)


async def test_the_same_event_twice_is_handled_once(db_urls) -> None:
    async with stack(db_urls, "http") as s:
        placed = (await s.place(quantity=3)).json()
        await s.wait_inbox(1)
        envelope = Envelope(type="stock.low", source="catalog", data={
            "shop_id": s.shop["id"], "owner_id": "grower-events-1", "product_id": 1, "product_name": "Súng",
            "variant_id": 1, "variant_label": "Củ", "stock": 2, "threshold": 5})
        token = {"X-Service-Token": s.apps["notify"].state.settings.service_token.get_secret_value(),
                 "Content-Type": "application/json"}
        replies = [await s.notify.post("/internal/events", content=envelope.model_dump_json(), headers=token)
                   for _ in range(3)]
        assert [r.json()["handled"] for r in replies] == ["new", "duplicate", "duplicate"]
        inbox = await s.inbox()
        assert [i["type"] for i in inbox["items"]] == ["stock.low", "order.placed"]
        assert placed["code"] in inbox["items"][1]["title"]
        bad = await s.notify.post("/internal/events", content=envelope.model_dump_json())
        assert bad.status_code == 401


async def test_a_batch_is_handled_in_one_go_each_event_once_under_its_own_request_id(db_urls) -> None:
    from sqlalchemy import select

    from common.db import Database
    from services.notify.mail.models import MailJob

    async with stack(db_urls, "http") as s:
        assert (await s.notify.put("/api/v1/notifications/settings", json={"email": "vuon@example.vn"},
                                   headers=GROWER)).status_code == 200
        token = {"X-Service-Token": s.apps["notify"].state.settings.service_token.get_secret_value()}

        def placed(n: int) -> dict:
            return Envelope(type="order.placed", source="orders", data={
                "order_id": n, "code": f"CV-B{n}", "shop_id": s.shop["id"], "shop_owner_id": "grower-events-1",
                "shop_name": "Vườn", "buyer_id": None, "status": "pending", "payment_status": "unpaid",
                "payment_method": "cod", "total": 150000, "contact_name": "Anh Tư", "contact_email": None,
                "lines": [{"product_name": "Súng", "variant_label": "Củ", "quantity": 1, "unit_price": 150000}],
                "actor_role": "guest"}).model_dump(mode="json")

        first, second, third = placed(1), placed(2), placed(3)
        batch = {"events": [{"envelope": first, "request_id": "req-first"},
                            {"envelope": second, "request_id": "req-second"}]}
        reply = await s.notify.post("/internal/events/batch", json=batch, headers=token)
        assert reply.status_code == 200, reply.text
        assert [e["handled"] for e in reply.json()["events"]] == ["new", "new"]
        again = await s.notify.post("/internal/events/batch", headers=token, json={
            "events": [{"envelope": second}, {"envelope": third, "request_id": "req-third"}]})
        assert [e["handled"] for e in again.json()["events"]] == ["duplicate", "new"]
        malformed = {**placed(4), "data": {"order_id": "not a number"}}
        refused = await s.notify.post("/internal/events/batch", headers=token, json={
            "events": [{"envelope": placed(5)}, {"envelope": malformed}]})
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "body.events[1].envelope.data.order_id" in {e["field"] for e in refused.json()["errors"]}
        alone = await s.notify.post("/internal/events", json=malformed, headers=token)
        assert alone.status_code == 422 and "body.data.code" in {e["field"] for e in alone.json()["errors"]}
        inbox = await s.inbox()
        assert sorted(i["title"].split()[2] for i in inbox["items"]) == ["CV-B1", "CV-B2", "CV-B3"], \
            "each event once, and nothing of the refused batch"
        db = Database(db_urls["notify"], name="notify")  # the app's own runs on its server's loop
        try:
            async with db.sessionmaker() as session:
                mails = (await session.scalars(select(MailJob))).all()
        finally:
            await db.dispose()
        assert sorted((m.context.get("code") or m.context["order"]["code"], m.request_id) for m in mails) == [
            ("CV-B1", "req-first"), ("CV-B2", "req-second"), ("CV-B3", "req-third")]
        assert (await s.notify.post("/internal/events/batch", json=batch)).status_code == 401


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_stock_low_reaches_the_grower(db_urls, transport: str) -> None:
    async with stack(db_urls, transport) as s:
        variant = s.product["variants"][1]  # 5 pots; threshold set below
        await s.catalog.patch(f"/api/v1/products/{s.product['id']}", headers=GROWER, json={"variants": [
            {**{k: s.product["variants"][0][k] for k in ("id", "label", "retail_price", "wholesale_tiers",
                                                           "min_order_quantity", "stock")}},
            {"id": variant["id"], "label": variant["label"], "retail_price": variant["retail_price"],
             "stock": 5, "low_stock_threshold": 3}]})
        assert (await s.place(quantity=3, variant=1)).status_code == 201
        inbox = await s.wait_inbox(2)
        assert sorted(i["type"] for i in inbox["items"]) == ["order.placed", "stock.low"]
        low = next(i for i in inbox["items"] if i["type"] == "stock.low")
        assert "Chậu 30 cm" in low["title"] and "Còn 2" in low["body"]


async def test_inbox_is_the_owner_s_alone(db_urls) -> None:
    from tests.support.auth import auth

    async with stack(db_urls, "http") as s:
        await s.place(quantity=3)
        mine = await s.wait_inbox(1)
        other = auth(f"someone-{uuid.uuid4().hex[:6]}")
        assert (await s.inbox(other))["items"] == []
        item = mine["items"][0]["id"]
        assert (await s.notify.post(f"/api/v1/notifications/{item}/read", headers=other)).status_code == 404
        assert (await s.notify.post(f"/api/v1/notifications/{item}/read", headers=GROWER)).status_code == 200
        assert (await s.inbox())["unread_count"] == 0
        assert (await s.notify.get("/api/v1/notifications")).status_code == 401

"""Orders the grower took in a call or a chat: marked with where they came from, the grower's own shop only."""

from __future__ import annotations

import uuid

import pytest

from tests.orders.market import GROWER, ORDER, market
from tests.support.auth import auth


@pytest.fixture
async def m(db_urls):
    async with market(db_urls) as running:
        yield running


async def phone_order(m, headers=GROWER, **body):
    return await m.orders.post("/api/v1/orders/phone", headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
                               json={**ORDER, "lines": [{"variant_id": m.tuber, "quantity": 2}], **body})


async def test_a_chat_order_keeps_its_source(m) -> None:
    made = {}
    for source in ("phone", "facebook", "zalo", None):
        resp = await phone_order(m, **({"source": source} if source else {}))
        assert resp.status_code == 201, resp.text
        made[source] = resp.json()
        assert made[source]["source"] == (source or "phone")
        assert made[source]["history"][0]["actor_role"] == "grower"
    listed = (await m.orders.get("/api/v1/orders", headers=GROWER, params={"limit": 10})).json()["items"]
    assert sorted(o["source"] for o in listed) == ["facebook", "phone", "phone", "zalo"]


async def test_a_chat_order_cannot_claim_another_source_or_shop(m) -> None:
    for source in ("web", "api", "tiktok", ""):
        resp = await phone_order(m, source=source)
        assert resp.status_code == 422, (source, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
    other = await phone_order(m, headers=auth("someone-else"), source="zalo")
    assert other.status_code == 422 and "not your shop" in other.text

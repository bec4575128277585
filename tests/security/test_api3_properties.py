"""API3 Broken Object Property Level Authorization: fields a caller may not set are refused with a 422
naming each of them, never applied (mass assignment), and replies carry no property their reader may
not see. Every request body is strict (tests/contract/test_strict_bodies.py walks them all).

Orders refuse unknown fields outright (a `total`, `unit_price`, `status` or `payment_status` in a new
order is a 422: tests/orders/test_placing.py::test_client_prices_and_states_are_refused, at the
service); here the same goes through the gateway, and every other writable resource is tried.
"""

from __future__ import annotations

import uuid

import jwt

from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.security.conftest import ORDER, PASSWORD, Market

NOT_YOURS = {"id": 999_999, "owner_id": "someone-else", "created_at": "2000-01-01T00:00:00Z",
             "updated_at": "2000-01-01T00:00:00Z"}


def refused(resp, *fields: str) -> None:
    """A 422 naming every field the caller may not set (``variants[0].id`` → ``body.variants[0].id``)."""
    assert resp.status_code == 422, resp.text
    named = {e["field"] for e in resp.json()["errors"] if e["type"] == "extra_forbidden"}
    assert named == {f"body.{f}" for f in fields}, (named, fields)


def test_accounts_take_no_role_id_lock_or_hash_from_the_caller(market: Market) -> None:
    phone = f"0915{uuid.uuid4().int % 10**6:06d}"
    forged_id = str(uuid.uuid4())
    forged = {"id": forged_id, "locked": False, "is_admin": True, "password_hash": "$argon2id$forged",
              "created_at": "2000-01-01T00:00:00Z", "scopes": ["catalog:write"]}
    plain = {"role": "buyer", "name": "Khách", "phone": phone, "password": PASSWORD}
    refused(market.gw.post("/api/v1/auth/register", json={**plain, **forged}), *forged)
    assert market.gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD}).status_code == 401
    resp = market.gw.post("/api/v1/auth/register", json=plain)
    assert resp.status_code == 201, resp.text
    account = resp.json()
    assert account["id"] != forged_id and account["role"] == "buyer"
    assert not account["created_at"].startswith("2000")
    assert "password" not in resp.text and "hash" not in resp.text
    tokens = market.gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD})
    assert tokens.status_code == 200, "the password given is the one kept, whatever hash was sent"
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}

    refused(market.gw.patch("/api/v1/me", headers=headers, json={
        "name": "Khách Mới", "role": "admin", "phone": "+84911111111", "id": forged_id, "locked": True,
        "email": None}), "role", "phone", "id", "locked")
    assert market.gw.get("/api/v1/me", headers=headers).json()["name"] == "Khách"
    patched = market.gw.patch("/api/v1/me", headers=headers, json={"name": "Khách Mới", "email": None})
    assert patched.status_code == 200, patched.text
    me = market.gw.get("/api/v1/me", headers=headers).json()
    assert (me["name"], me["role"], me["phone"], me["id"]) == ("Khách Mới", "buyer", account["phone"], account["id"])
    # The next token carries the same role, and the account is not locked.
    again = market.gw.post("/api/v1/auth/token", json={"login": phone, "password": PASSWORD})
    assert again.status_code == 200
    assert jwt.decode(again.json()["access_token"], options={"verify_signature": False})["role"] == "buyer"
    assert market.gw.post("/api/v1/auth/register", json={
        "role": "admin", "name": "X", "phone": f"0916{uuid.uuid4().int % 10**6:06d}", "password": PASSWORD}
    ).status_code == 422


def test_shops_and_varieties_keep_their_owner_and_computed_fields(market: Market) -> None:
    victim, victim_shop, victim_product = market.grower_with_shop()
    attacker = market.register("grower")

    mine = {**SHOP, "slug": f"gia-{uuid.uuid4().hex[:8]}", "bank": BANK}
    refused(market.gw.post("/api/v1/shops", headers=attacker.headers, json={
        **mine, **NOT_YOURS, "owner_id": victim.id, "bank_account_last4": "0000", "bank_account": "999"}),
        *NOT_YOURS, "bank_account_last4", "bank_account")
    assert market.gw.get("/api/v1/shops/mine", headers=attacker.headers).status_code == 404  # nothing opened
    shop = market.gw.post("/api/v1/shops", headers=attacker.headers, json=mine)
    assert shop.status_code == 201, shop.text
    assert shop.json()["owner_id"] == attacker.id and shop.json()["id"] != NOT_YOURS["id"]
    assert shop.json()["bank_account_last4"] == BANK["account_number"][-4:]
    refused(market.gw.patch(f"/api/v1/shops/{shop.json()['id']}", headers=attacker.headers,
                            json={"owner_id": victim.id, "id": victim_shop["id"], "slug": victim_shop["slug"],
                                  "name": "Vườn Mới"}), "owner_id", "id", "slug")
    moved = market.gw.patch(f"/api/v1/shops/{shop.json()['id']}", headers=attacker.headers, json={"name": "Vườn Mới"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["owner_id"] == attacker.id and moved.json()["slug"] == shop.json()["slug"]
    assert market.gw.get("/api/v1/shops/mine", headers=victim.headers).json()["name"] == victim_shop["name"]

    # A variety lands in the caller's own shop whatever shop_id it names; prices and stock flags are
    # computed, never taken.
    refused(market.gw.post("/api/v1/products", headers=attacker.headers, json={
        **PRODUCT, **NOT_YOURS, "shop_id": victim_shop["id"], "min_price": 1, "in_stock": False,
        "search_text": "hoa sung gia re", "variants": [{
            **PRODUCT["variants"][0], "product_id": victim_product["id"], "archived": True, "in_stock": False}]}),
        *NOT_YOURS, "shop_id", "min_price", "in_stock", "search_text", "variants[0].product_id",
        "variants[0].archived", "variants[0].in_stock")
    assert market.gw.get("/api/v1/products", params={"mine": "true"}, headers=attacker.headers).json()["items"] == []
    # A variant id on a new variety is no way into another's variant.
    product = market.gw.post("/api/v1/products", headers=attacker.headers, json={
        **PRODUCT, "variants": [{**PRODUCT["variants"][0], "id": victim_product["variants"][0]["id"]}]})
    assert product.status_code == 201, product.text
    body = product.json()
    assert body["shop_id"] == shop.json()["id"] and body["id"] != NOT_YOURS["id"]
    assert body["min_price"] == PRODUCT["variants"][0]["retail_price"] and body["in_stock"] is True
    assert body["variants"][0]["id"] != victim_product["variants"][0]["id"]
    refused(market.gw.patch(f"/api/v1/products/{body['id']}", headers=attacker.headers,
                            json={"shop_id": victim_shop["id"], "min_price": 1, "name": "Súng mới"}),
            "shop_id", "min_price")
    changed = market.gw.patch(f"/api/v1/products/{body['id']}", headers=attacker.headers, json={"name": "Súng mới"})
    assert changed.status_code == 200 and changed.json()["shop_id"] == shop.json()["id"]
    assert changed.json()["min_price"] == PRODUCT["variants"][0]["retail_price"]
    # Taking over another variety's variant by its id is refused.
    stolen = market.gw.patch(f"/api/v1/products/{body['id']}", headers=attacker.headers, json={"variants": [
        {**PRODUCT["variants"][0], "id": victim_product["variants"][0]["id"]}]})
    assert stolen.status_code == 422, stolen.text
    theirs = market.gw.get(f"/api/v1/products/{victim_product['id']}").json()
    assert theirs["shop_id"] == victim_shop["id"] and theirs["variants"] == victim_product["variants"]


def test_orders_take_no_price_state_or_owner_from_the_caller(market: Market) -> None:
    grower, shop, product = market.grower_with_shop()
    buyer = market.register("buyer")
    variant = product["variants"][0]["id"]
    for field, value in {"total": 1, "subtotal": 1, "delivery_fee": 0, "status": "delivered",
                         "payment_status": "paid", "buyer_id": grower.id, "shop_owner_id": buyer.id,
                         "code": "CV-FORGED", "source": "phone"}.items():
        resp = market.place(variant, buyer.headers, **{field: value})
        assert resp.status_code == 422, (field, resp.text)
        assert any(e["field"] == f"body.{field}" for e in resp.json()["errors"]), resp.json()
    priced = market.gw.post("/api/v1/orders", headers={**buyer.headers, "Idempotency-Key": uuid.uuid4().hex},
                            json={**ORDER, "lines": [{"variant_id": variant, "quantity": 1, "unit_price": 1,
                                                      "price_kind": "wholesale"}]})
    assert priced.status_code == 422
    assert market.gw.get("/api/v1/orders", headers=buyer.headers).json()["items"] == []

    order = market.place(variant, buyer.headers, quantity=10).json()
    assert order["lines"][0]["unit_price"] == 38000, "the wholesale tier the quantity reaches, from the catalog"
    # A body on a move changes nothing but the move itself (confirm takes none; what is sent is not read).
    confirmed = market.gw.post(f"/api/v1/orders/{order['id']}/confirm", headers=grower.headers,
                               json={"reason": "x", "status": "delivered", "payment_status": "paid", "total": 1})
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["status"], confirmed.json()["payment_status"], confirmed.json()["total"]) == (
        "confirmed", "unpaid", order["total"])


def test_webhooks_and_api_keys_take_no_secret_state_or_owner(market: Market) -> None:
    grower = market.register("grower")
    other = market.register("grower")
    for extra in ({"secret": "whsec_" + "A" * 43}, {"active": False}, {"owner_id": other.id},
                  {"disabled_reason": "x"}, {"id": 1}):
        resp = market.gw.post("/api/v1/webhooks", headers=grower.headers,
                              json={"url": "https://8.8.8.8/h", "event_types": ["stock.low"], **extra})
        assert resp.status_code == 422, (extra, resp.text)
    hook = market.gw.post("/api/v1/webhooks", headers=grower.headers,
                          json={"url": "https://8.8.8.8/h", "event_types": ["stock.low"]}).json()
    for extra in ({"secret": "whsec_" + "A" * 43}, {"owner_id": other.id}, {"failing_since": None}):
        resp = market.gw.patch(f"/api/v1/webhooks/{hook['id']}", headers=grower.headers, json=extra)
        assert resp.status_code == 422, (extra, resp.text)
    listed = market.gw.get("/api/v1/webhooks", headers=grower.headers)
    assert hook["secret"] not in listed.text and "secret" not in listed.json()["items"][0]

    refused(market.gw.post("/api/v1/api-keys", headers=grower.headers, json={
        "name": "kho", "scopes": ["orders:read"], "prefix": "cvk_mine", "key": "cvk_mine_0000",
        "account_id": other.id, "revoked_at": None, "key_hash": "0" * 64}),
        "prefix", "key", "account_id", "revoked_at", "key_hash")
    assert market.gw.get("/api/v1/api-keys", headers=grower.headers).json()["items"] == []
    key = market.gw.post("/api/v1/api-keys", headers=grower.headers, json={"name": "kho", "scopes": ["orders:read"]})
    assert key.status_code == 201, key.text
    assert key.json()["prefix"] != "cvk_mine" and key.json()["key"] != "cvk_mine_0000"
    assert key.json()["scopes"] == ["orders:read"]
    assert [k["id"] for k in market.gw.get("/api/v1/api-keys", headers=grower.headers).json()["items"]] == \
        [key.json()["id"]]
    assert market.gw.get("/api/v1/api-keys", headers=other.headers).json()["items"] == []
    listed = market.gw.get("/api/v1/api-keys", headers=grower.headers)
    assert key.json()["key"] not in listed.text and "hash" not in listed.text


def test_public_replies_carry_no_private_property(market: Market) -> None:
    grower, shop, product = market.grower_with_shop()
    public = [market.gw.get(f"/api/v1/shops/{shop['id']}"), market.gw.get("/api/v1/shops", params={"limit": 100}),
              market.gw.get(f"/api/v1/products/{product['id']}"),
              market.gw.get("/api/v1/products", params={"shop_id": shop["id"]})]
    for resp in public:
        assert resp.status_code == 200
        for secret in (BANK["account_number"], grower.id, grower.phone[1:], "owner_id", "bank_account",
                       "bank_holder", "search_text"):
            assert secret not in resp.text, (str(resp.url), secret)
    # Even the owner sees the bank account masked.
    mine = market.gw.get("/api/v1/shops/mine", headers=grower.headers)
    assert BANK["account_number"] not in mine.text and mine.json()["bank_account_last4"] == "8888"

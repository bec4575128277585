"""The grower's pages without JavaScript: sign up, open the shop, list a variety with a photo, edit it,
mark it sold out; the live desk relay, order moves, the packing list; the session cookie and CSRF."""

from __future__ import annotations

import asyncio
import base64
import json
import re

import pytest

from tests.support.auth import token
from tests.support.fullstack import PASSWORD
from tests.web.conftest import PROVINCE, WARD, Market, hidden, jpeg

pytestmark = pytest.mark.asyncio(loop_scope="module")

PHONE = "0932000111"


async def sign_up(b, phone: str = PHONE) -> None:
    html = (await b.get("/grower/signup")).text
    resp = await b.post("/grower/signup", data={"csrf": hidden(html, "csrf"), "name": "Anh Tư", "phone": phone,
                                                "password": PASSWORD})
    assert resp.status_code == 303 and resp.headers["location"] == "/grower/shop", resp.text


async def test_signing_in_is_needed_and_the_cookie_is_locked_down(market: Market) -> None:
    async with market.browser() as b:
        resp = await b.get("/grower/")
        assert resp.status_code == 303 and resp.headers["location"] == "/grower/login?next=/grower/"
        html = (await b.get("/grower/login")).text
        wrong = await b.post("/grower/login", data={"csrf": hidden(html, "csrf"), "login": "0912345670",
                                                    "password": "nope-nope-nope", "next": "/grower/"})
        assert wrong.status_code == 401 and "Sai số điện thoại" in wrong.text
        ok = await b.post("/grower/login", data={"csrf": hidden(html, "csrf"), "login": "0912345670",
                                                 "password": PASSWORD, "next": "/grower/"})
        assert ok.status_code == 303 and ok.headers["location"] == "/grower/"
        cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("cv_session="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        # A new session, a new CSRF secret: the form rendered before signing in no longer works.
        stale = await b.post("/grower/logout", data={"csrf": hidden(html, "csrf")})
        assert stale.status_code == 403
        desk = await b.get("/grower/")
        assert desk.status_code == 200 and "Vườn Súng Đồng Tháp" in desk.text
        out = await b.post("/grower/logout", data={"csrf": hidden(desk.text, "csrf")})
        assert out.status_code == 303
        assert (await b.get("/grower/")).status_code == 303


async def test_an_expired_access_token_is_refreshed_from_the_cookie(market: Market) -> None:
    pair = (await market.stack.gw.post("/api/v1/auth/token", json={"login": "0912345670",
                                                                   "password": PASSWORD})).json()
    expired = token(market.grower["id"], "grower", ttl=-120)
    value = base64.urlsafe_b64encode(json.dumps({"a": expired, "r": pair["refresh_token"]}).encode()).decode()
    async with market.browser() as b:
        b.cookies.set("cv_session", value.rstrip("="))
        resp = await b.get("/grower/products")
        assert resp.status_code == 200 and "Súng Thái Mini Pink" in resp.text
        renewed = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("cv_session="))
        assert pair["refresh_token"] not in base64.urlsafe_b64decode(renewed.split(";")[0][11:] + "==").decode()
        # The next request uses the new pair; the old refresh token is spent.
        assert (await b.get("/grower/products")).status_code == 200
    async with market.browser() as replay:
        replay.cookies.set("cv_session", value.rstrip("="))
        assert (await replay.get("/grower/products")).status_code == 200  # the same rotation, reused briefly


async def test_a_grower_signs_up_opens_a_shop_and_lists_a_variety_with_a_photo(market: Market) -> None:
    gw = market.stack.gw
    async with market.browser() as b:
        await sign_up(b)
        shop_form = (await b.get("/grower/shop")).text
        csrf = hidden(shop_form, "csrf")
        wards = await b.post("/grower/shop", data={"csrf": csrf, "action": "wards", "province_code": PROVINCE,
                                                   "name": "Vườn Sen Tư"})
        assert wards.status_code == 200 and "Phường Ba Đình" in wards.text and 'value="Vườn Sen Tư"' in wards.text
        bad = await b.post("/grower/shop", data={"csrf": csrf, "name": "Vườn Sen Tư", "province_code": PROVINCE,
                                                 "ward_code": WARD, "street": "3 Nguyễn Huệ", "phone": "123",
                                                 "delivery.pickup": "yes"})
        assert bad.status_code == 422 and 'id="phone-err"' in bad.text
        made = await b.post("/grower/shop", data={"csrf": csrf, "name": "Vườn Sen Tư", "province_code": PROVINCE,
                                                  "ward_code": WARD, "street": "3 Nguyễn Huệ", "phone": PHONE,
                                                  "delivery.pickup": "yes", "delivery.flat_fee": "25.000"})
        assert made.status_code == 303 and made.headers["location"] == "/grower/products", made.text
        form = (await b.get("/grower/products/new")).text
        assert 'type="file" accept="image/*" capture="environment"' in form
        fields = {"csrf": hidden(form, "csrf"), "name": "Sen Bách Diệp", "category": "lotus", "status": "active",
                  "variants[0].label": "Củ giống", "variants[0].retail_price": "200.000",
                  "variants[0].stock": "40", "variants[0].tiers[0].min_quantity": "10",
                  "variants[0].tiers[0].unit_price": "250000"}
        photo = {"photos": ("IMG_0001.jpg", jpeg((3000, 2000)), "image/jpeg")}
        refused = await b.post("/grower/products/new", data=fields, files=photo)
        assert refused.status_code == 422 and "Giá sỉ" in refused.text  # a wholesale price above retail
        assert 'value="Sen Bách Diệp"' in refused.text
        fields["variants[0].tiers[0].unit_price"] = "160000"
        created = await b.post("/grower/products/new", data=fields, files=photo)
        assert created.status_code == 303, created.text
        pid = int(re.fullmatch(r"/grower/products/(\d+)\?saved=1", created.headers["location"]).group(1))
        product = (await gw.get(f"/api/v1/products/{pid}")).json()
        assert product["name"] == "Sen Bách Diệp" and product["status"] == "active"
        assert len(product["photos"]) == 1 and product["photos"][0]["width"] == 3000
        variant = product["variants"][0]
        assert (variant["retail_price"], variant["stock"]) == (200000, 40)
        assert variant["wholesale_tiers"] == [{"min_quantity": 10, "unit_price": 160000}]
        # Edit: the variant keeps its id (past orders point at it); its price changes.
        edit = (await b.get(f"/grower/products/{pid}")).text
        assert f'name="variants[0].id" value="{variant["id"]}"' in edit
        changed = await b.post(f"/grower/products/{pid}", data={
            **fields, "csrf": hidden(edit, "csrf"), "variants[0].id": str(variant["id"]),
            "variants[0].retail_price": "180000"})
        assert changed.status_code == 303
        after = (await gw.get(f"/api/v1/products/{pid}")).json()["variants"]
        assert [(v["id"], v["retail_price"]) for v in after] == [(variant["id"], 180000)]
        sold = await b.post(f"/grower/products/{pid}/sold-out", data={"csrf": hidden(edit, "csrf")})
        assert sold.status_code == 303
        assert (await gw.get(f"/api/v1/products/{pid}")).json()["in_stock"] is False
        listing = await b.get("/grower/products")
        assert "Sen Bách Diệp" in listing.text and "Hết hàng" in listing.text


async def read_until(chunks, marker: bytes, timeout: float = 10.0) -> bytes:
    """Read the event stream (one iterator for the whole test) until ``marker`` arrives."""
    seen = b""

    async def read() -> bytes:
        nonlocal seen
        while marker not in seen:
            seen += await chunks.__anext__()
        return seen

    return await asyncio.wait_for(read(), timeout)


async def test_the_desk_hears_new_orders_live_and_moves_them(market: Market) -> None:
    gw = market.stack.gw
    tuber = market.product["variants"][0]
    async with market.browser() as b:
        html = (await b.get("/grower/login")).text
        await b.post("/grower/login", data={"csrf": hidden(html, "csrf"), "login": "0912345670",
                                            "password": PASSWORD, "next": "/grower/"})
        async with b.stream("GET", "/grower/stream", headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            chunks = stream.aiter_raw()
            await read_until(chunks, b"retry:")
            placed = await gw.post("/api/v1/orders", headers=market.stack.key(), json={
                "shop_id": market.shop["id"], "lines": [{"variant_id": tuber["id"], "quantity": 2}],
                "contact": {"name": "Chị Lan", "phone": "0977000111"},
                "address": {"province_code": PROVINCE, "ward_code": WARD, "street": "9 Hàng Đào"},
                "payment_method": "cod", "consent": True})
            assert placed.status_code == 201
            code = placed.json()["code"]
            seen = await read_until(chunks, code.encode())
            assert b"event: notification" in seen
        desk = await b.get("/grower/")
        assert code in desk.text and "Chị Lan" in desk.text
        oid = placed.json()["id"]
        card = desk.text[desk.text.index(f'id="order-{oid}"'):]
        assert f'action="/grower/orders/{oid}/confirm"' in card
        confirm = await b.post(f"/grower/orders/{oid}/confirm", data={"csrf": hidden(desk.text, "csrf"),
                                                                      "next": "/grower/"})
        assert confirm.status_code == 303 and confirm.headers["location"] == "/grower/"
        packing = await b.get("/grower/packing")
        assert "Củ giống" in packing.text and code in packing.text
        detail = await b.get(f"/grower/orders/{oid}")
        ship = await b.post(f"/grower/orders/{oid}/ship", data={"csrf": hidden(detail.text, "csrf")})
        assert ship.status_code == 303
        order = (await gw.get(f"/api/v1/orders/{oid}", headers=market.grower["headers"])).json()
        assert order["status"] == "shipped"
        # A move the order cannot make now shows the order as it is, not an error.
        again = await b.post(f"/grower/orders/{oid}/confirm", data={"csrf": hidden(detail.text, "csrf")})
        assert again.status_code == 303 and again.headers["location"] == f"/grower/orders/{oid}"
        forged = await b.post(f"/grower/orders/{oid}/deliver", data={"csrf": "0" * 64})
        assert forged.status_code == 403
        assert (await gw.get(f"/api/v1/orders/{oid}", headers=market.grower["headers"])).json()["status"] == "shipped"

"""The cart without JavaScript: varieties from two shops added from their pages, kept in a cookie,
priced by shop (retail or wholesale as the quantity goes), checked out once into one order per shop."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PROVINCE, WARD, Market, hidden

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def second_shop(market: Market) -> dict:
    gw = market.stack.gw
    headers = (await market.stack.register("grower", "0912345699", "Anh Tư"))["headers"]
    shop = await gw.post("/api/v1/shops", headers=headers, json={
        "name": "Vườn Sen Tháp Mười", "province_code": "82", "ward_code": "29869", "street": "3 Đường Sen",
        "phone": "0912345699", "delivery": {"flat_fee": 20000}})
    assert shop.status_code == 201, shop.text
    product = await gw.post("/api/v1/products", headers=headers, json={
        "name": "Sen Bách Diệp", "status": "active",
        "variants": [{"label": "Ngó sen", "retail_price": 80000, "stock": 20}]})
    assert product.status_code == 201, product.text
    return {"headers": headers, "shop": shop.json(), "product": product.json()}


async def test_a_cart_across_two_shops_is_one_checkout_and_two_orders(market: Market) -> None:
    other = await second_shop(market)
    mine = market.product
    tuber, pot = mine["variants"]
    async with market.browser() as b:
        for product, variant, qty in ((mine, tuber, "12"), (mine, pot, "1"), (other["product"],
                                                                              other["product"]["variants"][0], "2")):
            added = await b.post("/cart/add", data={"product_id": str(product["id"]), "variant": str(variant["id"]),
                                                    "qty": qty}, headers={"Origin": market.url})
            assert added.status_code == 303 and added.headers["location"] == "/cart?added=1"
        cart = await b.get("/cart")
        assert cart.status_code == 200 and cart.headers["cache-control"] == "private, no-store"
        text = cart.text
        assert "Vườn Súng Đồng Tháp" in text and "Vườn Sen Tháp Mười" in text
        assert "12 × <span class=\"amt\">120.000 ₫</span> (giá sỉ)" in text  # the wholesale tier reached
        assert "2 × <span class=\"amt\">80.000 ₫</span> (giá lẻ)" in text
        # 12 × 120.000 + 350.000 + 30.000 delivery = 1.820.000, and 2 × 80.000 + 20.000 = 180.000
        assert re.search(r"data-cart-total>2\.000\.000 ₫<", text), text
        # The quantity changed in the cart (without JavaScript: the update button).
        update = {"csrf": hidden(text, "csrf"), "action": "update", f"q.{mine['id']}.{pot['id']}": "0"}
        updated = await b.post("/cart", data=update)
        assert updated.status_code == 200 and "Chậu 30 cm" not in updated.text
        assert re.search(r"data-cart-total>1\.650\.000 ₫<", updated.text)
        # A reload keeps it.
        assert "Sen Bách Diệp" in (await b.get("/cart")).text
        form = {"csrf": hidden(updated.text, "csrf"), "idempotency_key": hidden(updated.text, "idempotency_key"),
                "action": "order", "contact.name": "Anh Minh", "contact.phone": "0987654321",
                "address.province_code": PROVINCE, "address.ward_code": WARD, "address.street": "5 Hàng Bạc",
                "payment_method": "cod", "delivery_method": "ship", "consent": "yes"}
        done = await b.post("/cart", data=form)
        assert done.status_code == 200, done.text
        assert "Đã đặt 2 đơn hàng" in done.text
        links = re.findall(r'href="(/t/[A-Za-z0-9_-]{16,64})"', done.text)
        assert len(links) == 2
        assert "Giỏ hàng đang trống." in (await b.get("/cart")).text
        for link in links:
            assert (await b.get(link)).status_code == 200
    mine_orders = (await market.stack.gw.get("/api/v1/orders", headers=market.grower["headers"])).json()["items"]
    theirs = (await market.stack.gw.get("/api/v1/orders", headers=other["headers"])).json()["items"]
    assert [(ln["quantity"], ln["price_kind"]) for ln in mine_orders[0]["lines"]] == [(12, "wholesale")]
    assert [(ln["quantity"], ln["unit_price"]) for ln in theirs[0]["lines"]] == [(2, 80000)]
    assert theirs[0]["total"] == 180000


async def test_adding_to_the_cart_from_another_site_is_refused(market: Market) -> None:
    async with market.browser() as b:
        resp = await b.post("/cart/add", data={"product_id": str(market.product["id"]),
                                               "variant": str(market.product["variants"][0]["id"]), "qty": "1"},
                            headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert resp.status_code == 403 and "cv_cart" not in resp.headers.get("set-cookie", "")
        bad = await b.post("/cart/add", data={"product_id": str(market.product["id"]),
                                              "variant": str(market.product["variants"][0]["id"]), "qty": "1.5"},
                           headers={"Origin": market.url})
        assert bad.status_code == 303 and "qty=1.5" in bad.headers["location"]  # the order form says why

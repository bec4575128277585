"""Orders from calls and chats, entered in the desk without JavaScript: the shop's varieties with wholesale
prices, the buyer, pickup without an address, the source; the tracking link to send; the desk marks them."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PROVINCE, WARD, Market, hidden, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")


def chat_form(html: str, market: Market, **fields: str) -> dict[str, str]:
    tuber = market.product["variants"][0]
    return {"csrf": hidden(html, "csrf"), "idempotency_key": hidden(html, "idempotency_key"),
            f"qty.{tuber['id']}": "12", "source": "zalo", "contact.name": "Cô Ba Zalo",
            "contact.phone": "0903 111 222", "delivery_method": "pickup", "payment_method": "cod",
            "consent": "yes", **fields}


async def test_a_zalo_order_with_wholesale_prices_picked_up_and_its_tracking_link(market: Market) -> None:
    async with signed_in(market) as b:
        desk = (await b.get("/grower/")).text
        assert 'href="/grower/orders/new"' in desk and "Đơn mới" in desk
        html = (await b.get("/grower/orders/new")).text
        assert "Súng Thái Mini Pink" in html and "Củ giống" in html and "Chậu 30 cm" in html
        assert "Giá sỉ từ 10: 120.000" in html
        data = chat_form(html, market)
        first = await b.post("/grower/orders/new", data=data)
        assert first.status_code == 201, first.text
        code = re.search(r"Đã ghi đơn (CV-[0-9A-Z]+)", first.text).group(1)
        link = re.search(r'id="tracking-link" class="link" type="url" value="([^"]+)"', first.text).group(1)
        assert "12 ×" in first.text or "1.440.000" in first.text
        assert 'href="sms:+84903111222?&amp;body=' in first.text and 'href="https://zalo.me/0903111222"' in first.text
        again = await b.post("/grower/orders/new", data=data)  # a reload: the same key, the same order
        assert again.status_code == 201 and code in again.text and link in again.text

        order_id = re.search(r'href="/grower/orders/(\d+)">Xem đơn', first.text).group(1)
        detail = await market.stack.gw.get(f"/api/v1/orders/{order_id}", headers=market.grower["headers"])
        order = detail.json()
        assert (order["source"], order["delivery_method"], order["delivery_fee"]) == ("zalo", "pickup", 0)
        assert order["lines"][0]["price_kind"] == "wholesale" and order["total"] == 12 * 120000
        assert not order["address"]  # picked up at the nursery: no address kept
        desk = (await b.get("/grower/")).text
        card = desk[desk.index(f'id="order-{order_id}"'):]
        assert '<span class="badge src">Zalo</span>' in card[:card.index("</li>")]
        assert "Nhận đơn qua: Zalo" in (await b.get(f"/grower/orders/{order_id}")).text
    tracking = await market.browser().get(link.replace(market.url, ""))
    assert tracking.status_code == 200 and code in tracking.text


async def test_a_phone_order_shipped_by_bank_transfer(market: Market) -> None:
    async with signed_in(market) as b:
        html = (await b.get("/grower/orders/new")).text
        pot = market.product["variants"][1]
        data = chat_form(html, market, **{f"qty.{market.product['variants'][0]['id']}": "",
                                          f"qty.{pot['id']}": "1", "source": "phone", "delivery_method": "ship",
                                          "payment_method": "bank_transfer", "address.province_code": PROVINCE,
                                          "address.ward_code": WARD, "address.street": "9 Phố Huế"})
        resp = await b.post("/grower/orders/new", data=data)
        assert resp.status_code == 201, resp.text
        assert "Gọi điện" in resp.text and "Chuyển khoản" in resp.text


async def test_what_the_form_refuses_is_said_in_vietnamese(market: Market) -> None:
    tuber = market.product["variants"][0]
    async with signed_in(market) as b:
        html = (await b.get("/grower/orders/new")).text
        cases = [
            ({f"qty.{tuber['id']}": ""}, "Chọn giống và số lượng"),
            ({"consent": ""}, "Hỏi người mua rồi đánh dấu ô này"),
            ({"source": "tiktok"}, "Hãy chọn một trong các lựa chọn"),
            ({f"qty.{tuber['id']}": "mười"}, "Nhập một số nguyên"),
            ({"contact.phone": "12345"}, "không phải số di động Việt Nam hợp lệ"),
            ({f"qty.{tuber['id']}": "100000"}, "Không đủ hàng cho đơn này"),
            ({"delivery_method": "ship"}, "Vui lòng kiểm tra các mục được đánh dấu"),  # no address to ship to
        ]
        for fields, expected in cases:
            resp = await b.post("/grower/orders/new", data=chat_form(html, market, **fields))
            assert resp.status_code in (409, 422), (fields, resp.status_code)
            assert expected in resp.text, (fields, resp.text[:3000])
            assert "Cô Ba Zalo" in resp.text  # what was typed stays
        forged = chat_form(html, market)
        forged["csrf"] = "x"
        assert (await b.post("/grower/orders/new", data=forged)).status_code == 403
    async with market.browser() as anonymous:
        resp = await anonymous.get("/grower/orders/new")
        assert resp.status_code == 303 and resp.headers["location"].startswith("/grower/login")


async def test_the_form_of_a_shop_with_many_varieties_is_light(market: Market) -> None:
    """Bytes on the wire, gzip as a phone asks: 40 varieties of two Phân loại each, with the CSS and JS."""
    gw, headers = market.stack.gw, market.grower["headers"]
    for i in range(39):
        resp = await gw.post("/api/v1/products", headers=headers, json={
            "name": f"Súng lai số {i}", "status": "active", "variants": [
                {"label": "Củ giống", "retail_price": 90000 + i * 1000, "stock": 50,
                 "wholesale_tiers": [{"min_quantity": 10, "unit_price": 80000}]},
                {"label": "Chậu 30 cm", "retail_price": 250000, "stock": 5}]})
        assert resp.status_code == 201, resp.text
    async with signed_in(market) as b:
        form = await b.get("/grower/orders/new", headers={"Accept-Encoding": "gzip"})
        assert form.headers["content-encoding"] == "gzip" and form.text.count("data-variant ") == 80
        total = form.num_bytes_downloaded
        for ref in re.findall(r'(?:href|src)="(/static/[^"]+)"', form.text):
            total += (await b.get(ref, headers={"Accept-Encoding": "gzip"})).num_bytes_downloaded
    print(f"new order form with 80 Phân loại, its CSS and JS: {total} bytes on the wire (gzip)")
    assert total <= 60 * 1024, total

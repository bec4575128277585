"""The grower's product tools without JavaScript: state and stock of each Phân loại in the variety list,
stock changed from the list (leaving what orders took from the others alone), photos made the cover,
moved and deleted, and a variety duplicated."""

from __future__ import annotations

import re

import pytest

from tests.web.conftest import PROVINCE, WARD, Market, hidden, jpeg, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def product(market: Market) -> dict:
    return (await market.stack.gw.get(f"/api/v1/products/{market.product['id']}",
                                      headers=market.grower["headers"])).json()


async def test_the_list_shows_state_and_stock_and_changes_stock_in_place(market: Market) -> None:
    gw, pid = market.stack.gw, market.product["id"]
    tuber, pot = market.product["variants"]
    async with signed_in(market) as b:
        listing = await b.get("/grower/products")
        assert listing.status_code == 200
        assert "Đang bán" in listing.text and "tồn kho 105" in listing.text
        assert f'for="stock-{tuber["id"]}">Tồn kho – Củ giống' in listing.text
        csrf = hidden(listing.text, "csrf")

        # An order takes two tubers; then the grower counts the pots. The tubers' stock is not written back.
        placed = await gw.post("/api/v1/orders", headers=market.stack.key(), json={
            "shop_id": market.shop["id"], "lines": [{"variant_id": tuber["id"], "quantity": 2}],
            "contact": {"name": "Chị Lan", "phone": "0977000111"},
            "address": {"province_code": PROVINCE, "ward_code": WARD, "street": "9 Hàng Đào"},
            "payment_method": "cod", "consent": True})
        assert placed.status_code == 201, placed.text
        tuber_left = next(v for v in (await product(market))["variants"] if v["id"] == tuber["id"])["stock"]
        assert tuber_left == 98
        saved = await b.post(f"/grower/products/{pid}/stock", data={"csrf": csrf, "variant_id": pot["id"],
                                                                    "stock": "1.200"})
        assert saved.status_code == 303
        assert saved.headers["location"] == f"/grower/products?saved={pot['id']}#v-{pot['id']}"
        stocks = {v["id"]: v["stock"] for v in (await product(market))["variants"]}
        assert stocks == {tuber["id"]: 98, pot["id"]: 1200}
        after = await b.get(saved.headers["location"])
        assert "tồn kho 1298" in after.text and "Đã lưu" in after.text

        bad = await b.post(f"/grower/products/{pid}/stock", data={"csrf": csrf, "variant_id": pot["id"],
                                                                  "stock": "mười"})
        assert bad.status_code == 422 and "Nhập một số nguyên" in bad.text
        assert (await b.post(f"/grower/products/{pid}/stock", data={"csrf": csrf, "variant_id": "999999",
                                                                    "stock": "1"})).status_code == 404
        assert (await b.post(f"/grower/products/{pid}/stock", data={"variant_id": pot["id"],
                                                                    "stock": "1"})).status_code == 403

        # Sold out: every Phân loại to 0, and the list says so.
        await b.post(f"/grower/products/{pid}/sold-out", data={"csrf": csrf})
        assert {v["stock"] for v in (await product(market))["variants"]} == {0}
        assert "Hết hàng" in (await b.get("/grower/products")).text
        await b.post(f"/grower/products/{pid}/stock", data={"csrf": csrf, "variant_id": tuber["id"], "stock": "50"})


async def test_the_variety_form_says_phan_loai(market: Market) -> None:
    async with signed_in(market) as b:
        html = (await b.get(f"/grower/products/{market.product['id']}")).text
        assert "<legend>Phân loại 1" in html and ">Tên phân loại</label>" in html
        assert "Bán theo" not in html and "Cách bán" not in html


async def test_photos_are_made_the_cover_moved_and_deleted(market: Market) -> None:
    gw, pid = market.stack.gw, market.product["id"]
    for colour in ((20, 160, 60), (240, 200, 40)):
        added = await gw.post(f"/api/v1/products/{pid}/photos", content=jpeg(colour=colour),
                              headers={**market.grower["headers"], "Content-Type": "image/jpeg"})
        assert added.status_code == 201, added.text
    first, second, third = [p["id"] for p in (await product(market))["photos"]]
    async with signed_in(market) as b:
        page = (await b.get(f"/grower/products/{pid}")).text
        csrf = hidden(page, "csrf")
        assert page.count("Đặt làm ảnh bìa") == 2 and "Ảnh bìa" in page and 'aria-label="Xoá ảnh 3"' in page

        async def act(photo: int, action: str) -> list[int]:
            resp = await b.post(f"/grower/products/{pid}/photos/{photo}/{action}", data={"csrf": csrf})
            assert resp.status_code == 303 and resp.headers["location"].endswith("#photos"), resp.text
            return [p["id"] for p in (await product(market))["photos"]]

        assert await act(third, "cover") == [third, first, second]
        assert await act(third, "later") == [first, third, second]
        assert await act(second, "earlier") == [first, second, third]
        assert await act(second, "delete") == [first, third]
        assert (await b.post(f"/grower/products/{pid}/photos/{second}/cover", data={"csrf": csrf})).status_code == 404
        assert (await b.post(f"/grower/products/{pid}/photos/{first}/rotate", data={"csrf": csrf})).status_code == 404


async def test_a_variety_is_duplicated_hidden_without_stock_or_photos(market: Market) -> None:
    gw, pid = market.stack.gw, market.product["id"]
    original = await product(market)
    async with signed_in(market) as b:
        csrf = hidden((await b.get(f"/grower/products/{pid}")).text, "csrf")
        resp = await b.post(f"/grower/products/{pid}/duplicate", data={"csrf": csrf})
        assert resp.status_code == 303
        new_id = int(re.fullmatch(r"/grower/products/(\d+)\?copied=1", resp.headers["location"]).group(1))
        assert new_id != pid
        page = await b.get(resp.headers["location"])
        assert "Đây là bản sao, đang ẩn với người mua" in page.text
    copy = (await gw.get(f"/api/v1/products/{new_id}", headers=market.grower["headers"])).json()
    assert copy["name"] == original["name"] + " (bản sao)"
    assert (copy["status"], copy["photos"], copy["category"]) == ("draft", [], original["category"])
    assert [(v["label"], v["retail_price"], v["wholesale_tiers"], v["stock"]) for v in copy["variants"]] == [
        (v["label"], v["retail_price"], v["wholesale_tiers"], 0) for v in original["variants"]]
    assert (await gw.get(f"/api/v1/products/{new_id}")).status_code == 404  # hidden from buyers

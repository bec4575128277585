"""The cart on a phone: three varieties from two shops, a reload, one checkout, two orders."""

from __future__ import annotations

import re

from tests.browser.test_buyer_fixes import fill_address, fill_contact
from tests.browser.test_buyer_path import nursery


async def test_three_varieties_from_two_shops_one_checkout_two_orders(stack, page, axe, shot):
    grower, _, (product,) = await nursery(stack)
    other = await stack.register("grower", "0912345699", "Anh Tư")
    shop2 = (await stack.gw.post("/api/v1/shops", headers=other["headers"], json={
        "name": "Vườn Sen Tháp Mười", "province_code": "82", "ward_code": "29869", "street": "3 Đường Sen",
        "phone": "0912345699", "delivery": {"flat_fee": 20000}})).json()
    lotus = (await stack.gw.post("/api/v1/products", headers=other["headers"], json={
        "name": "Sen Bách Diệp", "status": "active",
        "variants": [{"label": "Ngó sen", "retail_price": 80000, "stock": 20}]})).json()
    assert "id" in shop2 and "id" in lotus

    async def add(url, label, qty):
        await page.goto(url)
        await page.get_by_label(re.compile(label)).check()
        await page.get_by_label("Số lượng", exact=True).fill(qty)
        await page.get_by_role("button", name="Thêm vào giỏ").click()
        await page.wait_for_url("**/cart?added=1")

    await add(product["url"], "^Củ giống", "10")
    await add(product["url"], "^Chậu 30 cm", "1")
    await add(lotus["url"], "^Ngó sen", "2")
    await page.reload()
    main = await page.locator("main").inner_text()
    assert "Vườn Súng Sa Đéc" in main and "Vườn Sen Tháp Mười" in main
    assert "10 × 120.000 ₫ (giá sỉ)" in main and "1 × 350.000 ₫ (giá lẻ)" in main and "2 × 80.000 ₫ (giá lẻ)" in main
    # 1.200.000 + 350.000 + 30.000, and 160.000 + 20.000
    assert await page.locator("[data-cart-total]").inner_text() == "1.760.000 ₫"
    await fill_contact(page)
    await fill_address(page)
    await page.locator("#consent").check()
    await shot(page, "cart-01-two-shops")
    assert await axe(page) == []
    await page.get_by_role("button", name="Đặt các đơn hàng").click()
    await page.wait_for_load_state()
    assert await page.locator("h1").inner_text() == "Đã đặt 2 đơn hàng"
    assert await page.locator(".done-orders a").count() == 2
    await shot(page, "cart-02-placed")
    assert await axe(page) == []
    mine = (await stack.gw.get("/api/v1/orders", headers=grower["headers"])).json()["items"]
    theirs = (await stack.gw.get("/api/v1/orders", headers=other["headers"])).json()["items"]
    assert len(mine) == 1 and len(mine[0]["lines"]) == 2 and mine[0]["total"] == 1_580_000
    assert len(theirs) == 1 and theirs[0]["total"] == 180_000
    await page.goto(stack.urls["gateway"] + "/cart")
    assert "Giỏ hàng đang trống." in await page.locator("main").inner_text()
    assert page.console_errors == []


async def test_the_cart_reprices_as_the_quantity_changes(stack, page):
    _, _, (product,) = await nursery(stack)
    await page.goto(product["url"])
    await page.get_by_label("Số lượng", exact=True).fill("2")
    await page.get_by_role("button", name="Thêm vào giỏ").click()
    await page.wait_for_url("**/cart?added=1")
    line = page.locator("[data-cart-line] [data-line]")
    assert await line.inner_text() == "2 × 150.000 ₫ (giá lẻ) = 300.000 ₫"
    await page.locator("[data-cart-line] input").fill("12")  # the wholesale tier from 10
    assert await line.inner_text() == "12 × 120.000 ₫ (giá sỉ) = 1.440.000 ₫"
    assert await page.locator("[data-cart-total]").inner_text() == "1.470.000 ₫"  # + 30.000 delivery
    await page.get_by_role("button", name="Cập nhật giỏ hàng").click()
    await page.wait_for_load_state()
    await page.reload()
    assert await page.locator("[data-cart-line] input").input_value() == "12"

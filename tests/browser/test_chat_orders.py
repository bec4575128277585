"""An order from a Zalo chat, entered on a phone: the varieties' wholesale price shown as the quantity
changes, pickup, the tracking link to send; the desk marks it Zalo. Screenshots; axe-core clean."""

from __future__ import annotations

import re
from urllib.parse import unquote

from tests.browser.desk import grower_with_shop

PHONE = "0912 345 555"


async def test_a_zalo_order_entered_on_a_phone(stack, page, axe, shot):
    base, gw = stack.urls["gateway"], stack.gw
    grower = await grower_with_shop(stack, page, PHONE, "Cô Út", "Vườn Súng Cô Út")
    made = (await gw.post("/api/v1/products", headers=grower["headers"], json={
        "name": "Súng Thái Mini Pink", "status": "active", "variants": [
            {"label": "Củ giống", "retail_price": 150000, "stock": 40,
             "wholesale_tiers": [{"min_quantity": 10, "unit_price": 120000}]},
            {"label": "Chậu 30 cm", "retail_price": 350000, "stock": 5}]})).json()

    await page.get_by_role("link", name="Đơn mới").click()
    await page.wait_for_url("**/grower/orders/new")
    await page.get_by_label("Zalo").check()
    await page.get_by_label(re.compile("^Củ giống")).fill("12")
    assert "120.000" in await page.locator("[data-line]").first.inner_text()  # the wholesale price
    await page.get_by_label("Tên người mua").fill("Chị Tư")
    await page.get_by_label("Số điện thoại người mua").fill("0903 111 222")
    await page.get_by_label(re.compile("^Người mua đến vườn nhận hàng")).check()
    await page.get_by_label(re.compile("^Người mua đã đồng ý")).check()
    assert await axe(page) == []
    await shot(page, "grower-chat-01-form")
    await page.get_by_role("button", name="Ghi đơn").click()
    await page.get_by_role("heading", name=re.compile("^Đã ghi đơn CV-")).wait_for()
    link = await page.get_by_label("Đường dẫn theo dõi đơn").input_value()
    assert link.startswith(base + "/t/")
    sms = await page.get_by_role("link", name="Gửi qua SMS").get_attribute("href")
    assert sms.startswith("sms:+84903111222?&body=")
    assert unquote(sms.split("body=", 1)[1]) == await page.locator("main p.msg").inner_text()
    assert link in unquote(sms)
    assert await page.get_by_role("button", name="Chia sẻ hoặc chép đường dẫn").is_visible()
    assert await axe(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing runs off the side
    await shot(page, "grower-chat-02-created")

    await page.goto(base + "/grower/")
    card = page.locator("li.order-card").first
    assert "Zalo" in await card.locator(".badge.src").inner_text()
    assert "Chị Tư" in await card.inner_text() and "1.440.000" in await card.inner_text()
    await shot(page, "grower-chat-03-desk")
    assert await axe(page) == []
    assert page.console_errors == []
    assert made["variants"][0]["id"]

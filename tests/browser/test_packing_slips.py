"""Packing slips on a phone, and printed: the order's slip opens from the order, the day's slips from
the packing list; Chromium prints them one A6 page (105 × 148 mm) per order, the screen's bar left
out. Screenshots; axe-core finds nothing serious or critical."""

from __future__ import annotations

import re

from tests.support.fullstack import PASSWORD

PHONE = "0912 345 444"
A6_POINTS = (105 / 25.4 * 72, 148 / 25.4 * 72)


async def test_slips_open_from_the_order_and_print_on_a6(stack, page, axe, shot):
    base, gw = stack.urls["gateway"], stack.gw
    grower = await stack.register("grower", PHONE.replace(" ", ""), "Cô Hạnh")
    shop = (await gw.post("/api/v1/shops", headers=grower["headers"], json={
        "name": "Vườn Súng Cô Hạnh", "province_code": "82", "ward_code": "29869", "street": "8 Nguyễn Huệ",
        "phone": PHONE.replace(" ", ""), "delivery": {"pickup": True, "flat_fee": 30000}})).json()
    made = (await gw.post("/api/v1/products", headers=grower["headers"], json={
        "name": "Súng Nam Phi", "status": "active", "variants": [
            {"label": "Củ giống", "retail_price": 120000, "stock": 40}]})).json()
    orders = []
    for name, qty in (("Anh Khoa", 2), ("Chị Vy", 5)):
        placed = await gw.post("/api/v1/orders", headers=stack.key(), json={
            "shop_id": shop["id"], "lines": [{"variant_id": made["variants"][0]["id"], "quantity": qty}],
            "contact": {"name": name, "phone": "0987654321"},
            "address": {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
            "payment_method": "cod", "consent": True})
        assert placed.status_code == 201, placed.text
        orders.append(placed.json())

    await page.goto(base + "/grower/login")
    await page.get_by_label(re.compile("^Số điện thoại hoặc email")).fill(PHONE)
    await page.get_by_label(re.compile("^Mật khẩu")).fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/grower/")
    await page.goto(f"{base}/grower/orders/{orders[0]['id']}")
    await page.get_by_role("link", name="In phiếu gửi hàng").click()
    await page.wait_for_url(f"**/grower/orders/{orders[0]['id']}/slip")
    slip = page.locator("article.slip")
    assert await slip.count() == 1
    text = await slip.inner_text()
    assert "Anh Khoa" in text and "0987 654 321" in text and "Phường Ba Đình" in text
    assert f"Thu hộ (COD): {orders[0]['total']:,} ₫".replace(",", ".") in text
    await shot(page, "grower-slip-01-one")
    assert await axe(page) == []

    await page.goto(base + "/grower/packing")
    await page.get_by_role("link", name="In phiếu gửi hàng của hôm nay").click()
    await page.wait_for_url("**/grower/slips?day=*")
    assert await page.locator("article.slip").count() == 2
    assert await page.get_by_role("button", name="In 2 phiếu").is_visible()
    await shot(page, "grower-slip-02-day")
    assert await axe(page) == []

    # Printed: one A6 page per order.
    pdf = await page.pdf(prefer_css_page_size=True, print_background=True)
    boxes = [tuple(float(x) for x in m.groups()) for m in
             re.finditer(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)]
    assert len(boxes) == 2, boxes
    assert all(abs(w - A6_POINTS[0]) < 1 and abs(h - A6_POINTS[1]) < 1 for w, h in boxes), boxes
    await page.emulate_media(media="print")
    assert not await page.locator(".bar").is_visible()
    await page.emulate_media(media="screen")
    assert page.console_errors == []

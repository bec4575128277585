"""Shipping an order on a phone with its carrier and tracking code: chosen on the order's page, shown with a
link to the carrier's page, and in what the buyer's tracking link answers. Screenshots; axe-core clean."""

from __future__ import annotations

from tests.browser.desk import grower_with_shop

PHONE = "0912 345 777"


async def test_ship_with_ghtk_on_a_phone(stack, page, axe, shot):
    base, gw = stack.urls["gateway"], stack.gw
    grower = await grower_with_shop(stack, page, PHONE, "Chú Bảy", "Vườn Súng Chú Bảy")
    made = (await gw.post("/api/v1/products", headers=grower["headers"], json={
        "name": "Súng Nam Phi", "status": "active", "variants": [
            {"label": "Củ giống", "retail_price": 120000, "stock": 40}]})).json()
    order = (await gw.post("/api/v1/orders", headers=stack.key(), json={
        "lines": [{"variant_id": made["variants"][0]["id"], "quantity": 2}],
        "contact": {"name": "Anh Khoa", "phone": "0987654321"},
        "address": {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
        "payment_method": "cod", "consent": True})).json()
    assert (await gw.post(f"/api/v1/orders/{order['id']}/confirm", headers=grower["headers"])).status_code == 200

    await page.goto(f"{base}/grower/orders/{order['id']}")
    await page.get_by_label("Đơn vị vận chuyển").select_option("ghtk")
    await page.get_by_label("Mã vận đơn (không bắt buộc)").fill("S22.BO5.A12")
    assert await axe(page) == []
    await shot(page, "grower-ship-01-form")
    await page.get_by_role("button", name="Giao hàng").click()
    await page.get_by_text("Gửi qua Giao Hàng Tiết Kiệm (GHTK)").wait_for()
    link = page.get_by_role("link", name="S22.BO5.A12")
    assert await link.get_attribute("href") == "https://i.ghtk.vn/S22.BO5.A12"
    assert await page.get_by_role("button", name="Lưu đơn vị vận chuyển").is_visible()
    assert await axe(page) == []
    await shot(page, "grower-ship-02-shipped")
    token = order["tracking_url"].rsplit("/", 1)[-1]
    buyer = (await gw.get(f"/api/v1/tracking/{token}")).json()
    assert buyer["status"] == "shipped" and buyer["shipment"]["tracking_url"] == "https://i.ghtk.vn/S22.BO5.A12"
    assert page.console_errors == []

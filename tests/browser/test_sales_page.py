"""The sales page on a phone: this month against the last, charts drawn by the server as SVG that fit the
screen, the numbers as text, an unpaid bank transfer to open, the CSV one tap away. Screenshots; axe-core."""

from __future__ import annotations

import re

from tests.browser.desk import grower_with_shop

PHONE = "0912 345 666"


async def test_how_the_month_went(stack, page, axe, shot):
    gw = stack.gw
    grower = await grower_with_shop(stack, page, PHONE, "Cô Mai", "Vườn Sen Cô Mai", bank={
        "bin": "970415", "account_number": "113366668888", "holder": "Tran Thi Mai"})
    variants = []
    for name, price in (("Sen Nhật mini", 80000), ("Súng Thái đỏ", 150000), ("Bèo tai tượng", 20000)):
        made = (await gw.post("/api/v1/products", headers=grower["headers"], json={
            "name": name, "status": "active", "variants": [
                {"label": "Củ giống", "retail_price": price, "stock": 500,
                 "wholesale_tiers": [{"min_quantity": 10, "unit_price": price * 8 // 10}]}]})).json()
        variants.append(made["variants"][0]["id"])
    codes = {}
    for who, variant, qty, payment in (("Anh Khoa", 0, 2, "cod"), ("Chị Vy", 1, 12, "bank_transfer"),
                                       ("Chú Tám", 2, 30, "cod"), ("Cô Năm", 1, 1, "cod")):
        placed = await gw.post("/api/v1/orders", headers=stack.key(), json={
            "lines": [{"variant_id": variants[variant], "quantity": qty}],
            "contact": {"name": who, "phone": "0987654321"},
            "address": {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
            "payment_method": payment, "consent": True})
        assert placed.status_code == 201, placed.text
        codes[who] = placed.json()["code"]

    await page.get_by_role("link", name="Bán hàng").click()
    await page.wait_for_url("**/grower/sales")
    await page.get_by_role("heading", name=re.compile("^Bán hàng tháng")).wait_for()
    charts = page.get_by_role("img")
    assert await charts.count() == 4
    for i in range(4):
        box = await charts.nth(i).bounding_box()
        assert box["width"] <= 390 and box["height"] > 40
    assert await page.get_by_role("img", name=re.compile("^Giống bán chạy")).is_visible()
    table = await page.get_by_role("table").inner_text()
    assert "Doanh thu" in table and "Bán sỉ" in table
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert await axe(page) == []
    await shot(page, "grower-sales-01-month")

    async with page.expect_download() as download:
        await page.get_by_role("link", name=re.compile("^Tải đơn hàng tháng này")).click()
    csv = await (await download.value).path()
    text = csv.read_bytes().decode("utf-8-sig")  # noqa: ASYNC240 - a small file the browser just wrote
    assert all(code in text for code in codes.values())

    await page.get_by_role("link", name=codes["Chị Vy"]).click()
    await page.wait_for_url("**/grower/orders/*")
    assert "Chị Vy" in await page.locator("main").inner_text()
    await page.go_back()
    await page.get_by_role("link", name=re.compile("^←")).click()
    await page.wait_for_url("**/grower/sales?month=*")
    assert "Tháng này chưa có đơn nào" in await page.locator("main").inner_text()
    assert await axe(page) == []
    await shot(page, "grower-sales-02-last-month")
    assert page.console_errors == []

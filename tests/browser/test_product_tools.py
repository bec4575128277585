"""The grower's product tools on a phone, in Vietnamese: the variety list with each Phân loại's stock,
changed in place (the page is not reloaded), and the photo tools (cover, order, delete). Screenshots;
axe-core finds nothing serious or critical."""

from __future__ import annotations

import io
import re

from PIL import Image

from tests.support.fullstack import PASSWORD

PHONE = "0912 345 333"


def jpeg(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (1200, 900), colour).save(out, "JPEG", quality=85)
    return out.getvalue()


async def test_stock_is_changed_in_place_and_photos_are_arranged(stack, page, axe, shot):
    base, gw = stack.urls["gateway"], stack.gw
    grower = await stack.register("grower", PHONE.replace(" ", ""), "Chị Hồng")
    shop = (await gw.post("/api/v1/shops", headers=grower["headers"], json={
        "name": "Vườn Sen Hồng", "province_code": "01", "ward_code": "00004", "street": "2 Hàng Gai",
        "phone": PHONE.replace(" ", ""), "delivery": {"pickup": True}})).json()
    made = (await gw.post("/api/v1/products", headers=grower["headers"], json={
        "name": "Sen Quan Âm", "status": "active", "variants": [
            {"label": "Củ giống", "retail_price": 90000, "stock": 40},
            {"label": "Chậu 40 cm", "retail_price": 450000, "stock": 3}]})).json()
    for colour in ((230, 120, 160), (40, 150, 70), (250, 210, 60)):
        added = await gw.post(f"/api/v1/products/{made['id']}/photos", content=jpeg(colour),
                              headers={**grower["headers"], "Content-Type": "image/jpeg"})
        assert added.status_code == 201
    assert shop["id"] == made["shop_id"]

    await page.goto(base + "/grower/login")
    await page.get_by_label(re.compile("^Số điện thoại hoặc email")).fill(PHONE)
    await page.get_by_label(re.compile("^Mật khẩu")).fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/grower/")
    await page.get_by_role("link", name="Giống cây").click()
    await page.wait_for_url("**/grower/products")
    row = page.locator(f"#p-{made['id']}")
    assert "Đang bán" in await row.inner_text() and "tồn kho 43" in await row.inner_text()

    # In place: the page stays (a mark set on it survives), the line's total follows.
    await page.evaluate("() => { window.__stayed = true; }")
    pot = made["variants"][1]["id"]
    await page.get_by_label("Tồn kho – Chậu 40 cm").fill("12")
    await page.locator(f"#v-{pot}").get_by_role("button", name="Lưu").click()
    await page.locator(f"#v-{pot} [data-stock-status]").filter(has_text="Đã lưu").wait_for()
    assert await page.evaluate("() => window.__stayed === true")
    assert "tồn kho 52" in await row.inner_text()
    stocks = [v["stock"] for v in (await gw.get(f"/api/v1/products/{made['id']}")).json()["variants"]]
    assert stocks == [40, 12]
    await shot(page, "grower-tools-01-list")
    assert await axe(page) == []

    # Photos: the last one made the cover, then the second one deleted.
    await row.get_by_role("link").first.click()
    await page.wait_for_url(f"**/grower/products/{made['id']}")
    photos = [p["id"] for p in (await gw.get(f"/api/v1/products/{made['id']}")).json()["photos"]]
    await page.locator(".photo-tools li").nth(2).get_by_role("button", name="Đặt làm ảnh bìa").click()
    await page.wait_for_url(re.compile(r"saved=1#photos$"))
    assert [p["id"] for p in (await gw.get(f"/api/v1/products/{made['id']}")).json()["photos"]] == \
        [photos[2], photos[0], photos[1]]
    await page.get_by_role("button", name="Xoá ảnh 2").click()
    await page.wait_for_url(re.compile(r"saved=1#photos$"))
    assert await page.locator(".photo-tools li").count() == 2
    await page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    await shot(page, "grower-tools-02-photos")
    assert await axe(page) == []

    # Duplicate: a hidden copy opens.
    await page.get_by_role("button", name="Nhân bản giống cây này").click()
    await page.wait_for_url(re.compile(r"/grower/products/\d+\?copied=1$"))
    assert await page.locator("h1").inner_text() == "Sen Quan Âm (bản sao)"
    await shot(page, "grower-tools-03-copy")
    assert await axe(page) == []
    assert page.console_errors == []

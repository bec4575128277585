"""The grower's path on a phone, in Vietnamese: sign up → open the shop (province and ward pickers) →
list a variety with a photo from the camera (shrunk on the phone before it is sent) → an order arrives
live on the desk → confirm → ship. Screenshots at each step; axe-core finds no serious or critical
violation on any page."""

from __future__ import annotations

import io
import re

from PIL import Image

from tests.support.fullstack import PASSWORD

PHONE = "0912 345 678"


def camera_jpeg() -> bytes:
    """A 4000×3000 photo, as a phone's camera takes it."""
    im = Image.new("RGB", (4000, 3000), (236, 120, 160))
    im.paste((250, 220, 60), (1500, 1000, 2500, 2000))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95)
    return out.getvalue()


async def test_a_grower_opens_a_shop_lists_a_variety_and_handles_a_live_order(stack, page, axe, shot):
    base = stack.urls["gateway"]

    # 1. Sign up.
    await page.goto(base + "/grower/signup")
    assert await page.get_attribute("html", "lang") == "vi"
    await page.get_by_label(re.compile("^Họ tên")).fill("Chị Sen")
    await page.get_by_label(re.compile("^Số điện thoại di động")).fill(PHONE)
    await page.get_by_label(re.compile("^Mật khẩu")).fill(PASSWORD)
    await shot(page, "grower-01-signup")
    assert await axe(page) == []
    await page.get_by_role("button", name="Tạo tài khoản").click()
    await page.wait_for_url("**/grower/shop")

    # 2. Open the shop: the ward list follows the province.
    await page.get_by_label(re.compile("^Tên cửa hàng")).fill("Vườn Súng Sa Đéc")
    await page.get_by_label(re.compile("^Số điện thoại cửa hàng")).fill(PHONE)
    await page.get_by_label(re.compile("^Tỉnh/thành phố")).select_option("82")
    await page.wait_for_function("() => document.querySelector('#ward_code').options.length > 10")
    await page.get_by_label(re.compile("^Phường/xã")).select_option("29869")
    await page.get_by_label(re.compile("^Số nhà, tên đường")).fill("12 Nguyễn Sinh Sắc")
    await page.get_by_label(re.compile("^Phí giao hàng")).fill("30.000")
    await page.get_by_label("Ngân hàng").select_option("970415")
    await page.get_by_label("Số tài khoản").fill("113366668888")
    await page.get_by_label("Chủ tài khoản").fill("Nguyen Thi Sen")
    await shot(page, "grower-02-shop")
    assert await axe(page) == []
    await page.get_by_role("button", name="Mở cửa hàng").click()
    await page.wait_for_url("**/grower/products")
    assert await axe(page) == []

    # 3. A variety with a photo from the camera, shrunk on the phone before upload.
    await page.get_by_role("link", name="Thêm giống cây").click()
    await page.wait_for_url("**/grower/products/new")
    camera = page.locator("#photos")
    assert await camera.get_attribute("capture") == "environment"
    assert await camera.get_attribute("accept") == "image/*"
    await page.get_by_label(re.compile("^Tên giống")).fill("Súng Thái Mini Pink")
    original = camera_jpeg()
    await camera.set_input_files(files=[{"name": "IMG_20260701.jpg", "mimeType": "image/jpeg", "buffer": original}])
    await page.wait_for_function("() => document.querySelector('[data-shrink-status]')"
                                 ".textContent.startsWith('Sẵn sàng')")
    shrunk = await page.evaluate("() => { const f = document.querySelector('#photos').files[0];"
                                 " return {type: f.type, size: f.size}; }")
    assert shrunk["type"] == "image/jpeg" and shrunk["size"] < len(original)
    await page.get_by_label("Tên phân loại").first.fill("Củ giống")
    await page.get_by_label("Giá lẻ (đ)").first.fill("150000")
    await page.get_by_label("Tồn kho").first.fill("50")
    await page.get_by_label("Giá sỉ từ (số lượng)").first.fill("10")
    await page.get_by_label("Giá sỉ (đ)").first.fill("120000")
    await shot(page, "grower-03-variety")
    assert await axe(page) == []
    await page.get_by_role("button", name="Lưu").click()
    await page.wait_for_url(re.compile(r"/grower/products/\d+\?saved=1$"))
    product_id = int(re.search(r"/grower/products/(\d+)", page.url).group(1))
    product = (await stack.gw.get(f"/api/v1/products/{product_id}")).json()
    assert len(product["photos"]) == 1
    assert (product["photos"][0]["width"], product["photos"][0]["height"]) == (1600, 1200)  # shrunk on the phone
    assert product["variants"][0]["wholesale_tiers"] == [{"min_quantity": 10, "unit_price": 120000}]
    await page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    await shot(page, "grower-04-variety-saved")
    assert await axe(page) == []

    # 4. The desk; an order arrives and shows up without reloading the page.
    await page.get_by_role("link", name="Đơn hàng").click()
    await page.wait_for_url("**/grower/")
    assert await axe(page) == []
    await page.wait_for_timeout(300)  # the desk's event stream connects
    placed = await stack.gw.post("/api/v1/orders", headers=stack.key(), json={
        "shop_id": product["shop_id"], "lines": [{"variant_id": product["variants"][0]["id"], "quantity": 12}],
        "contact": {"name": "Anh Minh", "phone": "0987654321"},
        "address": {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
        "payment_method": "cod", "consent": True})
    assert placed.status_code == 201, placed.text
    order = placed.json()
    card = page.locator(f"#order-{order['id']}")
    await card.wait_for(timeout=10_000)
    toast = await page.locator("[data-toast]").inner_text()
    assert toast.startswith(f"Đơn mới {order['code']}") and toast.count("mới") == 1, toast  # once, not twice
    assert "Anh Minh" in await card.inner_text()
    await shot(page, "grower-05-desk-live")
    assert await axe(page) == []

    # 5. Confirm, then ship.
    await card.get_by_role("button", name="Xác nhận").click()
    await page.wait_for_url("**/grower/")
    card = page.locator(f"#order-{order['id']}")
    assert "Đã xác nhận" in await card.locator(".badge").inner_text()
    await card.get_by_role("button", name="Giao hàng").click()
    await page.wait_for_url("**/grower/")
    assert "Đang giao" in await page.locator(f"#order-{order['id']} .badge").inner_text()
    await shot(page, "grower-06-shipped")
    assert await axe(page) == []
    headers = {"Authorization": "Bearer " + (await stack.gw.post("/api/v1/auth/token", json={
        "login": PHONE, "password": PASSWORD})).json()["access_token"]}
    assert (await stack.gw.get(f"/api/v1/orders/{order['id']}", headers=headers)).json()["status"] == "shipped"

    # The packing list and the order's own page.
    await page.get_by_role("link", name="Soạn hàng").click()
    await page.wait_for_url("**/grower/packing")
    await shot(page, "grower-07-packing")
    assert await axe(page) == []
    await page.goto(f"{base}/grower/orders/{order['id']}")
    assert await axe(page) == []
    assert page.console_errors == []

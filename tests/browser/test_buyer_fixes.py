"""What a buyer on a phone ran into, each seen in Chromium at 390×844 in Vietnamese: square photos in the
grids, pickup without an address, whole quantities only, messages in the page's language, a page fresh
right after a price change, HTML error pages, the minimum order, the payment in the history."""

from __future__ import annotations

import re

from gateway.web.places import sorted_wards
from tests.browser.test_buyer_path import PROVINCE, WARD, nursery


async def test_cards_keep_their_photo_square(stack, page, shot):
    _, shop, _ = await nursery(stack, products=3)
    for url in (shop["url"], stack.urls["gateway"] + "/"):
        await page.goto(url)
        await page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
        boxes = await page.eval_on_selector_all(".card img", "els => els.map(e => e.getBoundingClientRect())"
                                                " .map(r => [Math.round(r.width), Math.round(r.height)])")
        assert len(boxes) == 3
        for width, height in boxes:
            assert 150 < width < 200 and abs(width - height) <= 1, boxes
    await shot(page, "fix-01-square-cards")


async def fill_contact(page, name="Anh Minh", phone="0987 654 321"):
    await page.get_by_label(re.compile("^Họ tên")).fill(name)
    await page.get_by_label(re.compile("^Số điện thoại di động")).fill(phone)


async def fill_address(page):
    await page.get_by_label(re.compile("^Tỉnh/thành phố")).select_option(PROVINCE)
    await page.wait_for_function("() => document.querySelector('#address-ward_code').options.length > 10")
    await page.get_by_label(re.compile("^Phường/xã")).select_option(WARD)
    await page.get_by_label(re.compile("^Số nhà, tên đường")).fill("5 Hàng Bạc")


async def test_pickup_at_the_nursery_asks_no_address(stack, page, axe, shot):
    grower, _, (product,) = await nursery(stack)
    await page.goto(f"{product['url']}/order?variant={product['variants'][0]['id']}&qty=2")
    assert await page.get_by_label(re.compile("^Tỉnh/thành phố")).is_visible()
    await fill_contact(page)
    await page.get_by_label("Tôi nhận tại vườn").check()
    assert await page.get_by_label(re.compile("^Tỉnh/thành phố")).is_hidden()
    assert await page.locator("[data-fee]").inner_text() == "0 ₫"
    await page.locator("#consent").check()
    await shot(page, "fix-02-pickup")
    assert await axe(page) == []
    await page.get_by_role("button", name="Đặt hàng").click()
    await page.wait_for_url(re.compile(r"/t/[A-Za-z0-9_-]{16,}$"))
    assert "Nhận tại vườn" in await page.locator("main").inner_text()
    orders = (await stack.gw.get("/api/v1/orders", headers=grower["headers"])).json()["items"]
    assert [(o["delivery_method"], o["address"], o["delivery_fee"]) for o in orders] == [("pickup", {}, 0)]
    assert page.console_errors == []


async def test_a_quantity_of_1_5_is_refused_not_read_as_15(stack, page, shot):
    grower, _, (product,) = await nursery(stack)
    tuber = product["variants"][0]
    await page.goto(f"{product['url']}/order?variant={tuber['id']}")
    qty = page.locator(f"#qty-{tuber['id']}")
    await qty.fill("1.5")
    line = page.locator("[data-variant]").first.locator("[data-line]")
    assert await line.inner_text() == "Số lượng là số nguyên (1, 2, 3…), không có dấu phẩy hay dấu chấm"
    await fill_contact(page)
    await fill_address(page)
    await page.locator("#consent").check()
    await page.get_by_role("button", name="Đặt hàng").click()
    assert await qty.evaluate("el => el.validationMessage") == await line.inner_text()  # the browser holds it back
    assert "/order" in page.url
    await shot(page, "fix-03-whole-quantity")
    # Sent anyway (an old browser): the server says the same, and nothing is ordered.
    await qty.evaluate("el => { el.step = 'any'; el.setCustomValidity(''); el.form.noValidate = true; }")
    await page.get_by_role("button", name="Đặt hàng").click()
    await page.wait_for_load_state()
    assert "Số lượng là số nguyên" in await page.locator(f"#qty-{tuber['id']}-err").inner_text()
    assert (await stack.gw.get("/api/v1/orders", headers=grower["headers"])).json()["items"] == []


async def test_the_page_is_fresh_right_after_a_price_change(stack, page, shot):
    grower, shop, (product,) = await nursery(stack)
    tuber = product["variants"][0]
    await page.goto(product["url"])
    assert "150.000 ₫" in await page.locator("main").inner_text()
    resp = await stack.gw.patch(f"/api/v1/products/{product['id']}", headers=grower["headers"], json={
        "variants": [{**{k: tuber[k] for k in ("id", "label", "stock", "wholesale_tiers")}, "retail_price": 155000},
                     {k: product["variants"][1][k] for k in ("id", "label", "retail_price", "stock")}]})
    assert resp.status_code == 200, resp.text
    await page.goto(shop["url"])
    await page.goto(product["url"])  # as a buyer comes back to it: a link, not a reload
    assert "155.000 ₫" in await page.locator("main").inner_text()
    await shot(page, "fix-04-fresh-price")


async def test_an_unknown_address_is_a_vietnamese_page_not_json(stack, page, axe, shot):
    for path in ("/khong-co-trang-nay", "/s/khong-co-vuon-nay"):
        response = await page.goto(stack.urls["gateway"] + path)
        assert response.status == 404 and response.headers["content-type"].startswith("text/html")
        assert await page.locator("h1").inner_text() == "Không tìm thấy"
        assert "Trang này không có" in await page.locator("main").inner_text()
    await shot(page, "fix-05-not-found")
    assert await axe(page) == []
    assert await page.get_by_role("link", name="Trang chủ").count() == 1


async def test_the_live_total_warns_below_the_minimum_and_the_error_states_it(stack, page, shot):
    grower, shop, (product,) = await nursery(stack)
    resp = await stack.gw.patch(f"/api/v1/shops/{shop['id']}", headers=grower["headers"],
                                json={"min_order_value": 500000})
    assert resp.status_code == 200, resp.text
    tuber = product["variants"][0]
    await page.goto(f"{product['url']}/order?variant={tuber['id']}&qty=2")
    warning = page.locator("[data-below-min]")
    assert await warning.inner_text() == "Đơn tối thiểu 500.000 ₫: mua thêm 200.000 ₫ nữa để đặt được"
    await shot(page, "fix-06-below-minimum")
    await page.locator(f"#qty-{tuber['id']}").fill("4")
    assert await warning.is_hidden()
    await page.locator(f"#qty-{tuber['id']}").fill("2")
    await fill_contact(page)
    await fill_address(page)
    await page.locator("#consent").check()
    await page.get_by_role("button", name="Đặt hàng").click()
    await page.wait_for_load_state()
    assert "500.000 ₫" in await page.locator("[role=alert]").inner_text()


async def test_an_amount_never_breaks_before_its_dong_sign(stack, page):
    _, _, (product,) = await nursery(stack)
    tuber = product["variants"][0]
    await page.goto(f"{product['url']}/order?variant={tuber['id']}&qty=32")
    line = page.locator("[data-variant]").first.locator("[data-line]")
    assert await line.inner_text() == "32 × 120.000 ₫ (giá sỉ) = 3.840.000 ₫"
    rects = await page.eval_on_selector_all(".amt, [data-total], .card .price",
                                            "els => els.map(e => e.getClientRects().length)")
    assert len(rects) >= 3 and set(rects) == {1}, rects


async def test_a_ward_is_found_by_typing_part_of_its_name(stack, page, axe, shot):
    _, _, (product,) = await nursery(stack)
    await page.goto(f"{product['url']}/order?variant={product['variants'][0]['id']}&qty=1")
    await page.get_by_label(re.compile("^Tỉnh/thành phố")).select_option("92")  # Cần Thơ
    await page.wait_for_function("() => document.querySelector('#address-ward_code').options.length > 100")
    names = await page.eval_on_selector_all("#address-ward_code option", "os => os.slice(1).map(o => o.text)")
    assert names[0] == "Phường An Bình" and len(names) == 103
    assert names == [w["name"] for w in sorted_wards("92")]  # the same order as without JavaScript
    await page.get_by_label("Tìm nhanh theo tên").fill("ninh kieu")  # no accents typed
    assert await page.eval_on_selector_all("#address-ward_code option", "os => os.map(o => o.text)") == [
        "Chọn…", "Phường Ninh Kiều"]
    assert await page.locator("#address-ward_code").input_value() != ""
    await shot(page, "fix-07-ward-search")
    assert await axe(page) == []


async def test_the_confirmation_keeps_everything_and_the_grower_is_one_tap_away(stack, page, axe, shot):
    grower, shop, (product,) = await nursery(stack)
    for url in (shop["url"], product["url"]):
        await page.goto(url)
        assert await page.get_attribute("[data-call]", "href") == "tel:+84912345678"
        assert await page.get_attribute("[data-zalo]", "href") == "https://zalo.me/0912345678"
    await page.goto(shop["url"])
    assert "maps/search" in await page.get_attribute("[data-map]", "href")
    await shot(page, "point3-shop-contact")
    assert await axe(page) == []

    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.goto(f"{product['url']}/order?variant={product['variants'][0]['id']}&qty=3")
    await fill_contact(page, phone="0987 654 321")
    await fill_address(page)
    await page.get_by_label("Chuyển khoản (VietQR)").check()
    await page.locator("#consent").check()
    await page.get_by_role("button", name="Đặt hàng").click()
    await page.wait_for_url(re.compile(r"/t/[A-Za-z0-9_-]{16,}$"))
    main = await page.locator("main").inner_text()
    assert "Cảm ơn bạn đã đặt hàng!" in main
    assert "5 Hàng Bạc, Phường Ba Đình, Thành phố Hà Nội" in main and "480.000 ₫" in main  # 3 × 150.000 + 30.000
    assert await page.get_attribute("[data-call]", "href") == "tel:+84912345678"
    # Paying from this phone: copy the account number and the memo, save the QR as a picture.
    await page.get_by_role("button", name="Sao chép số tài khoản").click()
    assert await page.evaluate("navigator.clipboard.readText()") == "113366668888"
    await page.get_by_role("button", name="Sao chép nội dung").click()
    memo = await page.locator("[data-memo]").inner_text()
    assert await page.evaluate("navigator.clipboard.readText()") == memo
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Lưu ảnh mã QR").click()
    saved = await (await download.value).path()
    assert (await download.value).suggested_filename == f"{memo}-vietqr.png"
    assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The link to keep: by SMS to their own number, or copied.
    sms = await page.get_attribute("[data-sms]", "href")
    assert sms.startswith("sms:+84987654321?&body=") and sms.endswith(page.url.split("://", 1)[1].split("/", 1)[1])
    await page.get_by_role("button", name="Sao chép đường dẫn").click()
    assert await page.evaluate("navigator.clipboard.readText()") == page.url
    orders = (await stack.gw.get("/api/v1/orders", headers=grower["headers"])).json()["items"]
    for move in ("confirm", "mark-paid"):
        moved = await stack.gw.post(f"/api/v1/orders/{orders[0]['id']}/{move}", headers=grower["headers"])
        assert moved.status_code == 200
    await page.reload()
    assert await page.locator(".timeline .what").all_inner_texts() == [
        "Đã đặt hàng", "Cửa hàng đã xác nhận", "Đã nhận tiền thanh toán"]
    await shot(page, "point4-tracking")
    assert await axe(page) == []
    assert page.console_errors == []

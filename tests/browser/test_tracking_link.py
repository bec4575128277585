"""The buyer's tracking link from the desk, on a phone (decision 0024): a slip printed with the QR code
of the link (read back from the page and compared with the link's matrix, and drawn square and large
enough on the A6 page), and an order taken in a chat whose link is sent from the order's page: SMS,
Zalo, a copy, or mailed again. Screenshots; axe-core clean."""

from __future__ import annotations

import re
from urllib.parse import unquote

from sqlalchemy import func, select

from common.db import Database
from services.notify.mail.models import MailJob
from tests.browser.desk import grower_with_shop
from tests.support.qr import encodes

PHONE = "0912 345 666"


async def buyer_mails(stack, address: str) -> int:
    db = Database(stack.apps["notify"].state.settings.database_url, name="notify")
    try:
        async with db.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(MailJob).where(
                MailJob.recipient == address, MailJob.template == "order_placed_buyer"))
    finally:
        await db.dispose()


async def test_a_slip_with_the_qr_and_a_chat_orders_link_sent_again(stack, page, axe, shot):
    base, gw = stack.urls["gateway"], stack.gw
    grower = await grower_with_shop(stack, page, PHONE, "Chú Bảy", "Vườn Sen Chú Bảy")
    made = (await gw.post("/api/v1/products", headers=grower["headers"], json={
        "name": "Sen Quan Âm", "status": "active", "variants": [
            {"label": "Củ giống", "retail_price": 90000, "stock": 40}]})).json()
    placed = await gw.post("/api/v1/orders", headers=stack.key(), json={
        "lines": [{"variant_id": made["variants"][0]["id"], "quantity": 2}],
        "contact": {"name": "Anh Khoa", "phone": "0987654321", "email": "khoa@example.vn"},
        "address": {"province_code": "01", "ward_code": "00004", "street": "5 Hàng Bạc"},
        "payment_method": "cod", "consent": True})
    assert placed.status_code == 201, placed.text
    web_order = placed.json()

    # The slip of a web order: its QR is the buyer's link.
    await page.goto(f"{base}/grower/orders/{web_order['id']}")
    await page.get_by_role("link", name="In phiếu gửi hàng").click()
    await page.wait_for_url(f"**/grower/orders/{web_order['id']}/slip")
    qr = page.locator("article.slip figure.track svg")
    assert await qr.count() == 1
    assert encodes(await qr.evaluate("el => el.outerHTML"), web_order["tracking_url"])
    box = await qr.bounding_box()
    assert abs(box["width"] - box["height"]) < 1 and box["width"] >= 90  # 26 mm at 96 px per inch: ~98 px
    assert "Quét để theo dõi đơn" in await page.locator("article.slip").inner_text()
    await shot(page, "grower-track-01-slip-qr")
    assert await axe(page) == []
    pdf = await page.pdf(prefer_css_page_size=True, print_background=True)
    assert len(re.findall(rb"/MediaBox \[0 0 ", pdf)) == 1  # still one A6 page

    # A chat order with the buyer's email; its link sent again from the order's page.
    await page.goto(base + "/grower/orders/new")
    await page.get_by_label("Zalo").check()
    await page.get_by_label(re.compile("^Củ giống")).fill("3")
    await page.get_by_label("Tên người mua").fill("Chị Tư")
    await page.get_by_label("Số điện thoại người mua").fill("0903 111 222")
    await page.get_by_label(re.compile("^Email người mua")).fill("chi.tu@example.vn")
    await page.get_by_label(re.compile("^Người mua đến vườn nhận hàng")).check()
    await page.get_by_label(re.compile("^Người mua đã đồng ý")).check()
    await page.get_by_role("button", name="Ghi đơn").click()
    await page.get_by_role("heading", name=re.compile("^Đã ghi đơn CV-")).wait_for()
    created = await page.locator("main").inner_text()
    assert "cũng đang được gửi tới email chi.tu@example.vn" in created
    link = await page.locator("#tracking-link").input_value()
    await shot(page, "grower-track-02-chat-created")
    await page.get_by_role("link", name="Xem đơn").click()
    await page.wait_for_url(re.compile(r".*/grower/orders/\d+$"))
    section = page.locator("section.tracking-share")
    await section.scroll_into_view_if_needed()
    assert await page.locator("#tracking-link").input_value() == link
    sms = await section.get_by_role("link", name="Gửi qua SMS").get_attribute("href")
    assert sms.startswith("sms:+84903111222?&body=") and link in unquote(sms)
    assert await section.get_by_role("link", name="Mở Zalo của người mua").get_attribute("href") == \
        "https://zalo.me/0903111222"
    assert await section.get_by_role("button", name="Chia sẻ hoặc chép đường dẫn").is_visible()
    assert await axe(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await shot(page, "grower-track-03-order-link")
    await section.get_by_role("button", name="Gửi qua email tới chi.tu@example.vn").click()
    await page.get_by_role("status").filter(has_text="Đã gửi đường dẫn theo dõi đơn tới chi.tu@example.vn").wait_for()
    await shot(page, "grower-track-04-mailed")
    assert await axe(page) == []
    assert await buyer_mails(stack, "chi.tu@example.vn") == 2  # after ordering, and again now

    # Its slip: the same link as a QR.
    await page.get_by_role("link", name="In phiếu gửi hàng").click()
    assert encodes(await page.locator("article.slip figure.track svg").evaluate("el => el.outerHTML"), link)
    await shot(page, "grower-track-05-chat-slip")
    assert page.console_errors == []

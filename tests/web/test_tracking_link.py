"""The buyer's tracking link in the desk, without a browser (decision 0024): the packing slip's QR code
is the order's link (its SVG read back module by module and compared with the matrix of the link); an
order from before links were kept has no QR, said plainly; a chat order takes the buyer's email; the
order's page offers the link again by SMS, Zalo, a copy or a mail."""

from __future__ import annotations

import asyncio
import re
import uuid

import pytest
from sqlalchemy import func, select, update

from common.db import Database
from services.notify.mail.models import MailJob
from services.orders.orders.models import Order
from tests.support.qr import encodes
from tests.web.conftest import Market, hidden, place, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="module")


def slip_svgs(html: str) -> list[str]:
    return re.findall(r'<svg xmlns="http://www.w3.org/2000/svg".*?</svg>', html, flags=re.S)


async def forget_link(market: Market, order_id: int) -> None:
    """As for an order placed before the token was kept (the migration leaves theirs empty)."""
    db = Database(market.stack.apps["orders"].state.settings.database_url, name="orders")
    try:
        async with db.sessionmaker() as session:
            await session.execute(update(Order).where(Order.id == order_id).values(tracking_token_encrypted=None))
            await session.commit()
    finally:
        await db.dispose()


async def mails_to(market: Market, address: str) -> int:
    db = Database(market.stack.apps["notify"].state.settings.database_url, name="notify")
    try:
        async with db.sessionmaker() as session:
            return await session.scalar(select(func.count()).select_from(MailJob).where(
                MailJob.recipient == address, MailJob.template == "order_placed_buyer"))
    finally:
        await db.dispose()


async def test_the_slip_carries_the_qr_of_the_tracking_link(market: Market) -> None:
    order = await place(market, "Anh Quét", 2)
    old = await place(market, "Chị Cũ", 1)
    await forget_link(market, old["id"])
    async with signed_in(market) as b:
        slip = (await b.get(f"/grower/orders/{order['id']}/slip")).text
        [svg] = slip_svgs(slip)
        assert encodes(svg, order["tracking_url"])
        assert not encodes(svg, old["tracking_url"])  # the comparison can fail: another link, another matrix
        assert f"<title>Đường dẫn theo dõi đơn {order['code']}</title>" in svg and "Quét để theo dõi đơn" in slip
        assert "<script" not in svg and "Không có mã QR" not in slip

        before = (await b.get(f"/grower/orders/{old['id']}/slip")).text
        assert slip_svgs(before) == []
        assert "Không có mã QR: đơn này được đặt trước khi Chợ Vườn lưu đường dẫn theo dõi." in before

        day = (await b.get("/grower/slips")).text
        svgs = slip_svgs(day)
        assert any(encodes(s, order["tracking_url"]) for s in svgs)
        assert len(svgs) == day.count('<article class="slip"') - day.count("Không có mã QR")

        page = (await b.get(f"/grower/orders/{old['id']}")).text
        assert "Đơn này được đặt trước khi Chợ Vườn lưu đường dẫn theo dõi" in page
        assert 'id="tracking-link"' not in page


async def test_a_chat_order_with_an_email_and_the_link_sent_again(market: Market) -> None:
    tuber = market.product["variants"][0]
    address = f"co.ba.{uuid.uuid4().hex[:6]}@example.vn"
    async with signed_in(market) as b:
        html = (await b.get("/grower/orders/new")).text
        assert 'name="contact.email" type="email"' in html
        assert "Email người mua (không bắt buộc" in html
        data = {"csrf": hidden(html, "csrf"), "idempotency_key": hidden(html, "idempotency_key"),
                f"qty.{tuber['id']}": "2", "source": "zalo", "contact.name": "Cô Ba Zalo",
                "contact.phone": "0903 111 222", "contact.email": address, "delivery_method": "pickup",
                "payment_method": "cod", "consent": "yes"}
        bad = await b.post("/grower/orders/new", data={**data, "contact.email": "co-ba-at-zalo"})
        assert bad.status_code == 422 and 'id="contact-email-err"' in bad.text
        created = await b.post("/grower/orders/new", data=data)
        assert created.status_code == 201, created.text
        assert f"Đơn hàng và đường dẫn cũng đang được gửi tới email {address}." in created.text
        assert "có thể gửi lại từ đó bất cứ lúc nào" in created.text
        link = re.search(r'id="tracking-link" class="link" type="url" value="([^"]+)"', created.text).group(1)
        order_id = re.search(r'href="/grower/orders/(\d+)">Xem đơn', created.text).group(1)

        page = (await b.get(f"/grower/orders/{order_id}")).text
        assert f'value="{link}"' in page and "Đường dẫn theo dõi đơn của người mua" in page
        assert 'href="sms:+84903111222?&amp;body=' in page and 'href="https://zalo.me/0903111222"' in page
        assert f"Gửi qua email tới {address}" in page
        for _ in range(40):  # the placed order's own mail, handed to notify after the reply
            if await mails_to(market, address) == 1:
                break
            await asyncio.sleep(0.1)
        assert await mails_to(market, address) == 1
        form = {"csrf": hidden(page, "csrf"), "mail_key": hidden(page, "mail_key")}
        sent = await b.post(f"/grower/orders/{order_id}/tracking-mail", data=form)
        assert sent.status_code == 303 and sent.headers["location"] == f"/grower/orders/{order_id}?mailed=1"
        again = await b.post(f"/grower/orders/{order_id}/tracking-mail", data=form)  # a double tap: one mail
        assert again.status_code == 303
        shown = (await b.get(sent.headers["location"])).text
        assert f"Đã gửi đường dẫn theo dõi đơn tới {address}" in shown
        assert await mails_to(market, address) == 2

        # Without an email the page offers SMS and Zalo, no mail button.
        plain = await place(market, "Anh Không Email", 1)
        page = (await b.get(f"/grower/orders/{plain['id']}")).text
        assert f'value="{plain["tracking_url"]}"' in page and "Gửi qua email tới" not in page

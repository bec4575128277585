"""The buyer's tracking link, kept encrypted (decision 0024) and mailed: a real SMTP server (aiosmtpd)
receives the buyer's mail for a web order, each order of a cart's checkout and a chat order with an
email; the link in it opens the tracking page; no email, no mail; notify down, the order is placed all
the same and its mail goes once notify is back. The desk reads the links of its own orders only, and
mails one again; an order from before the link was kept has none. On SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import datetime as dt
import email.message
import re
import uuid

import httpx
from sqlalchemy import select, update

from common.db import Database
from services.orders.orders import tracking
from services.orders.orders.models import Order
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.support.fullstack import FullStack, full_stack
from tests.support.servers import free_port
from tests.support.smtp import Mailbox, smtp_server

ADDRESS = {"province_code": "92", "ward_code": "31135", "street": "9 Mậu Thân"}


def order_body(variant_id: int, quantity: int = 2, email_address: str | None = None, **extra) -> dict:
    contact = {"name": "Anh Tư", "phone": "0987 654 321", **({"email": email_address} if email_address else {})}
    return {"lines": [{"variant_id": variant_id, "quantity": quantity}], "contact": contact, "address": ADDRESS,
            "payment_method": "cod", "consent": True, **extra}


@contextlib.asynccontextmanager
async def database(url: str):
    db = Database(url, name="orders")
    try:
        yield db
    finally:
        await db.dispose()


async def buyer_mail_of(urls: dict, order_id: int) -> str | None:
    async with database(urls["orders"]) as db, db.sessionmaker() as session:
        return await session.scalar(select(Order.buyer_mail).where(Order.id == order_id))


def parts(message: email.message.EmailMessage) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content())


def link_in(text: str, base: str) -> str:
    found = re.findall(re.escape(base) + r"/t/[A-Za-z0-9_-]+", text)
    assert found, text
    assert len(set(found)) == 1, found
    return found[0]


async def grower_with_shop(stack: FullStack, phone: str, person: str, **shop) -> tuple[dict, int]:
    grower = await stack.register("grower", phone, person)
    made = await stack.gw.post("/api/v1/shops", headers=grower["headers"], json={**SHOP, "phone": phone, **shop})
    assert made.status_code == 201, made.text
    product = await stack.gw.post("/api/v1/products", headers=grower["headers"], json=PRODUCT)
    assert product.status_code == 201, product.text
    return grower, product.json()["variants"][0]["id"]


async def test_the_buyer_gets_the_link_by_mail_and_the_desk_keeps_it(db_urls) -> None:
    with smtp_server() as (port, mailbox):
        async with full_stack(db_urls, notify_settings={"smtp_url": f"smtp://127.0.0.1:{port}"}) as stack:
            base = stack.urls["gateway"]
            for name in ("orders", "gateway"):
                stack.apps[name].state.settings.public_base_url = base
            await _walk(stack, mailbox, db_urls, base)


async def _walk(stack: FullStack, mailbox: Mailbox, urls: dict, base: str) -> None:
    gw = stack.gw
    grower, tuber = await grower_with_shop(stack, "0912345678", "Bà Tư", bank=BANK)
    other, other_tuber = await grower_with_shop(stack, "0912345679", "Cô Út", name="Vườn Súng Cô Út")

    # A web order paid by bank transfer, with an email: one mail, the order, how to pay, the link.
    placed = await gw.post("/api/v1/orders", headers=stack.key(), json=order_body(
        tuber, 3, "tu@example.vn", payment_method="bank_transfer"))
    assert placed.status_code == 201, placed.text
    order = placed.json()
    [mail] = await mailbox.wait("tu@example.vn")
    assert order["code"] in mail["Subject"] and "Vườn Sen Bà Tư" in mail["Subject"]
    text, html = parts(mail)
    link = link_in(text, base)
    assert link == order["tracking_url"] and link in html
    for expected in ("Chào Anh Tư", "Súng Thái đỏ – Củ giống: 3 × 45.000", "Phí giao hàng: 15.000",
                     "Tổng cộng: 150.000", "Vui lòng chuyển khoản 150.000", "Số tài khoản: 113366668888",
                     "Chủ tài khoản: ", f"Nội dung: {order['code']}", "0912 345 678"):
        assert expected in text, (expected, text)
    page = await gw.get(link.removeprefix(base), headers={"Accept": "text/html"})
    assert page.status_code == 200 and order["code"] in page.text  # the link opens the tracking page
    assert "Đơn hàng và đường dẫn này cũng đang được gửi tới email tu@example.vn." in page.text
    assert await buyer_mail_of(urls, order["id"]) == "queued"

    # No email: no mail, nothing pending.
    quiet = await gw.post("/api/v1/orders", headers=stack.key(), json=order_body(tuber, 2))
    assert quiet.status_code == 201 and await buyer_mail_of(urls, quiet.json()["id"]) is None

    # A cart across two shops: one order each, one mail each, each with its own link.
    checkout = await gw.post("/api/v1/checkouts", headers=stack.key(), json={
        **order_body(tuber, 2, "cart@example.vn"),
        "lines": [{"variant_id": tuber, "quantity": 2}, {"variant_id": other_tuber, "quantity": 2}]})
    assert checkout.status_code == 201, checkout.text
    both = checkout.json()["orders"]
    mails = await mailbox.wait("cart@example.vn", count=2)
    assert len(mails) == 2
    by_code = {next(o["code"] for o in both if o["code"] in m["Subject"]): m for m in mails}
    for o in both:
        assert link_in(parts(by_code[o["code"]])[0], base) == o["tracking_url"]

    # A chat order with the email the grower entered: mailed too.
    chat = await gw.post("/api/v1/orders/phone", headers={**grower["headers"], "Idempotency-Key": uuid.uuid4().hex},
                         json={**order_body(tuber, 2, "zalo@example.vn"), "source": "zalo"})
    assert chat.status_code == 201, chat.text
    chat_order = chat.json()
    [chat_mail] = await mailbox.wait("zalo@example.vn")
    assert link_in(parts(chat_mail)[0], base) == chat_order["tracking_url"]
    assert "Thanh toán: thanh toán khi nhận hàng (COD)" in parts(chat_mail)[0]
    assert "Số tài khoản" not in parts(chat_mail)[0]

    # The desk: its own orders' links, never another shop's.
    ids = [order["id"], quiet.json()["id"], *(o["id"] for o in both)]
    links = await gw.get("/api/v1/orders/tracking-links", headers=grower["headers"], params={"order_id": ids})
    assert links.status_code == 200 and links.headers["cache-control"] == "no-store"
    got = {item["order_id"]: item["tracking_url"] for item in links.json()["items"]}
    mine = {o["id"]: o["tracking_url"] for o in both if o["shop_name"] == SHOP["name"]}
    assert len(mine) == 1
    assert got == {order["id"]: order["tracking_url"], quiet.json()["id"]: quiet.json()["tracking_url"], **mine}
    theirs = await gw.get("/api/v1/orders/tracking-links", headers=other["headers"], params={"order_id": ids})
    assert {i["order_id"] for i in theirs.json()["items"]} == {o["id"] for o in both
                                                                if o["shop_name"] == "Vườn Súng Cô Út"}
    assert (await gw.get("/api/v1/orders/tracking-links", headers=grower["headers"])).status_code == 422

    # Sent again from the desk: the same link; the same key twice sends once.
    again = f"/api/v1/orders/{chat_order['id']}/tracking-link/mail"
    key = str(uuid.uuid4())
    first = await gw.post(again, headers={**grower["headers"], "Idempotency-Key": key})
    assert first.status_code == 202 and first.json() == {"order_id": chat_order["id"], "recipient": "zalo@example.vn",
                                                          "queued": "new"}
    second = await gw.post(again, headers={**grower["headers"], "Idempotency-Key": key})
    assert second.json()["queued"] == "duplicate"
    mails = await mailbox.wait("zalo@example.vn", count=2)
    assert len(mails) == 2 and link_in(parts(mails[1])[0], base) == chat_order["tracking_url"]
    assert (await gw.post(again, headers=other["headers"])).status_code == 404  # not theirs
    no_email = await gw.post(f"/api/v1/orders/{quiet.json()['id']}/tracking-link/mail", headers=grower["headers"])
    assert no_email.status_code == 409 and no_email.json()["type"].endswith("/problems/no-buyer-email")

    # An order from before the link was kept: no link to show or mail.
    async with database(urls["orders"]) as db, db.sessionmaker() as session:
        await session.execute(update(Order).where(Order.id == chat_order["id"]).values(tracking_token_encrypted=None))
        await session.commit()
    old = await gw.get("/api/v1/orders/tracking-links", headers=grower["headers"],
                       params={"order_id": chat_order["id"]})
    assert old.json()["items"][0]["tracking_url"] is None
    refused = await gw.post(again, headers=grower["headers"])
    assert refused.status_code == 409 and refused.json()["type"].endswith("/problems/no-tracking-link")
    assert (await gw.get(chat_order["tracking_url"].removeprefix(base))).status_code == 200  # its link still works

    # Notify down: the order is placed all the same; its mail waits, and goes once notify is back.
    client = stack.apps["orders"].state.notify_mail.client
    notify_url, client.base_url = client.base_url, f"http://127.0.0.1:{free_port()}"
    try:
        down = await gw.post("/api/v1/orders", headers=stack.key(), json=order_body(tuber, 2, "later@example.vn"))
        assert down.status_code == 201, down.text
        later = down.json()
        assert (await gw.get(later["tracking_url"].removeprefix(base))).status_code == 200
        resend = await gw.post(f"/api/v1/orders/{later['id']}/tracking-link/mail", headers=grower["headers"])
        assert resend.status_code == 503 and resend.json()["service"] == "notify"
        assert await mailbox.wait("later@example.vn", timeout=1.5) == []
        assert await buyer_mail_of(urls, later["id"]) == "pending"
    finally:
        client.base_url = notify_url
    # Notify is back: the next round (woken by the next order, or ORDERS_BUYER_MAIL_INTERVAL) sends both.
    # An order still pending a day after it was placed is given up, not mailed days late.
    async with database(urls["orders"]) as db, db.sessionmaker() as session:
        await session.execute(update(Order).where(Order.id == quiet.json()["id"]).values(
            buyer_mail="pending", contact={**quiet.json()["contact"], "email": "stale@example.vn"},
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)))
        # And one whose buyer's data was erased before it went: nothing to send, and it holds no one back.
        await session.execute(update(Order).where(Order.id == order["id"]).values(
            buyer_mail="pending", contact={**order["contact"], "email": None}))
        await session.commit()
    nxt = await gw.post("/api/v1/orders", headers=stack.key(), json=order_body(tuber, 2, "next@example.vn"))
    assert nxt.status_code == 201
    [late] = await mailbox.wait("later@example.vn")
    assert link_in(parts(late)[0], base) == later["tracking_url"]
    assert len(await mailbox.wait("next@example.vn")) == 1
    assert await buyer_mail_of(urls, later["id"]) == "queued"
    assert await buyer_mail_of(urls, quiet.json()["id"]) == "dropped" and mailbox.to("stale@example.vn") == []
    assert await buyer_mail_of(urls, order["id"]) == "dropped" and len(mailbox.to("tu@example.vn")) == 1


async def test_the_mail_request_is_what_notify_takes() -> None:
    """The request body orders sends is one notify's ``/internal/mail`` model accepts (no stack needed)."""
    from services.notify.mail.endpoints import MailRequest

    class _Cipher:
        def decrypt(self, token: str) -> str:
            return {"acct": "113366668888", "tok": "secret-token"}[token]

    order = Order(id=7, code="CV-7K3Q9", shop_id=1, shop_owner_id="g", shop_name="Vườn", shop_slug="vuon",
                  shop_phone="+84912345678", source="web", payment_method="bank_transfer", delivery_method="pickup",
                  contact={"name": "Tư", "phone": "+84987654321", "email": "tu@example.vn"}, address={},
                  subtotal=90000, delivery_fee=0, total=90000, consent={}, tracking_token_hash="h",
                  tracking_token_encrypted="tok", reservation_id="r", locale="vi",
                  bank={"bin": "970415", "account_encrypted": "acct", "last4": "8888", "holder": "Tư"})
    order.lines = []
    link = tracking.link_of(order, _Cipher(), "https://cho.example.vn/")
    assert link == "https://cho.example.vn/t/secret-token"
    body = tracking.mail_request(order, link, _Cipher())
    body["context"]["lines"] = [{"product_name": "Súng", "variant_label": "Củ", "quantity": 2, "unit_price": 45000}]
    parsed = MailRequest.model_validate(body)
    assert parsed.context.bank.account_number == "113366668888" and parsed.context.bank.memo == "CV-7K3Q9"
    assert body["id"] == tracking.mail_request(order, link, _Cipher())["id"]  # drawn from the order: queued once
    assert httpx.URL(link).path == "/t/secret-token"

"""Email end to end: orders → events → notify's mail queue → a real SMTP server (aiosmtpd) that keeps
what it receives. On SQLite and PostgreSQL, over HTTP push (and NATS for the first test)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

import pytest
from sqlalchemy import select

from common.db import Database
from common.events import Envelope
from services.notify.mail.models import MailJob
from services.notify.mail.sender import replay_dead
from services.notify.mail.transport import LogTransport, SmtpTransport, make_transport
from services.orders.outbox import OutboxEvent
from tests.apps import make_app
from tests.conftest import asgi_client
from tests.events.stack import GROWER, ORDER, stack
from tests.support.auth import auth
from tests.support.servers import free_port
from tests.support.smtp import smtp_server

GROWER_EMAIL = "vuon.sen@example.vn"
BUYER_EMAIL = ORDER["contact"]["email"]
NO_EMAIL = {**ORDER["contact"], "email": None}  # the grower's mail alone (the buyer's has tests of its own)
SETTINGS = "/api/v1/notifications/settings"


@contextlib.asynccontextmanager
async def database(url: str, name: str):
    """The app's database, opened on the test's own event loop (the apps run in other threads)."""
    db = Database(url, name=name)
    try:
        yield db
    finally:
        await db.dispose()


async def mail_jobs(db_urls) -> list[MailJob]:
    async with database(db_urls["notify"], "notify") as db, db.sessionmaker() as session:
        return list((await session.scalars(select(MailJob).order_by(MailJob.created_at))).all())


async def outbox_envelope(db_urls, kind: str) -> Envelope:
    async with database(db_urls["orders"], "orders") as db, db.sessionmaker() as session:
        row = await session.scalar(select(OutboxEvent).where(OutboxEvent.type == kind))
    return Envelope(id=row.id, type=row.type, occurred_at=row.occurred_at, source="orders", version=row.version,
                    data=row.data)


PLACED_SUBJECT = re.compile(r"đã được ghi nhận|is recorded")


async def event_mails(mailbox, address: str, count: int, timeout: float = 10.0) -> list:
    """The mail ``address`` got from events (confirmed, shipped, cancelled…): the one orders sends for
    placing an order, with its tracking link, left out."""
    for _ in range(int(timeout / 0.05)):
        found = [m for m in mailbox.to(address) if not PLACED_SUBJECT.search(str(m["Subject"]))]
        if len(found) >= count:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    return [m for m in mailbox.to(address) if not PLACED_SUBJECT.search(str(m["Subject"]))]


async def set_grower_email(s, **fields) -> dict:
    resp = await s.notify.put(SETTINGS, json={"email": GROWER_EMAIL, **fields}, headers=GROWER)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def act(s, order: dict, action: str, headers=GROWER, **body) -> dict:
    resp = await s.orders.post(f"/api/v1/orders/{order['id']}/{action}", headers=headers, json=body or None)
    assert resp.status_code == 200, resp.text
    return resp.json()


def parts(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


@pytest.mark.parametrize("transport", ["http", "nats"])
async def test_grower_gets_one_vietnamese_mail_for_a_new_order(db_urls, transport: str) -> None:
    with smtp_server() as (port, mailbox):
        async with stack(db_urls, transport, smtp_url=f"smtp://127.0.0.1:{port}") as s:
            saved = await set_grower_email(s)
            assert saved["email"] == GROWER_EMAIL and saved["locale"] == "vi" and saved["email_enabled"] is True
            placed = await s.place(quantity=3)
            assert placed.status_code == 201, placed.text
            code = placed.json()["code"]

            mails = await mailbox.wait(GROWER_EMAIL)
            assert len(mails) == 1
            mail = mails[0]
            assert mail["Subject"] == f"Đơn mới {code} – 150.000 ₫"
            assert str(mail["From"]) == "Chợ Vườn <no-reply@cho-vuon.local>"
            assert mail["Content-Language"] == "vi" and mail["Date"] and mail["Auto-Submitted"] == "auto-generated"
            assert re.fullmatch(r"<[0-9a-f-]{36}@cho-vuon\.local>", mail["Message-ID"])
            assert mail.get_content_type() == "multipart/alternative"
            text, html = parts(mail)
            assert "Anh Tư vừa đặt đơn" in text and code in text and "Tổng cộng: 150.000 ₫" in text
            assert "3 × 45.000 ₫" in text and "Phí giao hàng: 15.000 ₫" in text
            assert html.lstrip().startswith("<!doctype html>") and '<html lang="vi">' in html and "150.000 ₫" in html
            # Headers travel MIME-encoded: the raw message is ASCII, the subject an encoded-word.
            raw = mailbox.raw_to(GROWER_EMAIL)[0]
            head = raw.split(b"\r\n\r\n", 1)[0]
            assert head.isascii() and re.search(rb"^Subject: =\?utf-8\?", head, re.M | re.I)
            # The buyer's own mail for placing it comes from orders (the tracking link in it, decision 0024),
            # not from the event: one, however often the event arrives.
            [placed_mail] = await mailbox.wait(BUYER_EMAIL)
            assert placed_mail["Subject"] == f"Đơn {code} đã được ghi nhận – Vườn Sen Bà Tư"

            # The same event again (a redelivery): handled once, so still one mail.
            envelope = await outbox_envelope(db_urls, "order.placed")
            token = s.apps["notify"].state.settings.service_token.get_secret_value()
            again = await s.notify.post("/internal/events", content=envelope.model_dump_json(),
                                        headers={"X-Service-Token": token, "Content-Type": "application/json"})
            assert again.json()["handled"] == "duplicate"
            assert len(await mailbox.wait(GROWER_EMAIL, settle=1.0)) == 1
            jobs = await mail_jobs(db_urls)
            assert sorted((j.recipient, j.template, j.state, j.attempts) for j in jobs) == [
                (BUYER_EMAIL, "order_placed_buyer", "sent", 1), (GROWER_EMAIL, "order_placed_grower", "sent", 1)]
            grower_job = next(j for j in jobs if j.recipient == GROWER_EMAIL)
            assert mail["Message-ID"] == f"<{grower_job.id}@cho-vuon.local>"


async def test_buyer_mails_in_the_language_of_the_order(db_urls) -> None:
    buyer = auth("buyer-mail-1", role="buyer")
    with smtp_server() as (port, mailbox):
        async with stack(db_urls, "http", smtp_url=f"smtp://127.0.0.1:{port}") as s:
            await set_grower_email(s)
            english = (await s.place(quantity=3, locale="en")).json()
            await act(s, english, "confirm")
            confirmed = await event_mails(mailbox, BUYER_EMAIL, 1)
            assert [m["Subject"] for m in confirmed] == [f"Your order {english['code']} is confirmed"]
            text, html = parts(confirmed[0])
            assert "Hello Anh Tư" in text and "Total: ₫150,000" in text and "cash on delivery" in text
            assert '<html lang="en">' in html and confirmed[0]["Content-Language"] == "en"
            await act(s, english, "ship")
            shipped = (await event_mails(mailbox, BUYER_EMAIL, 2))[1]
            assert shipped["Subject"] == f"Your order {english['code']} is on its way"
            assert "Please have ₫150,000 ready to pay on delivery." in parts(shipped)[0]

            # The grower cancels a Vietnamese order: the buyer is told why; the grower gets no mail about it.
            vietnamese = (await s.place(quantity=3)).json()
            await act(s, vietnamese, "cancel", reason="Hết hàng")
            cancelled = (await event_mails(mailbox, BUYER_EMAIL, 3))[2]
            assert cancelled["Subject"] == f"Đơn {vietnamese['code']} đã bị hủy"
            text, _ = parts(cancelled)
            assert "Vườn Sen Bà Tư đã hủy đơn" in text and "Lý do: Hết hàng" in text

            # A signed-in buyer cancels: both hear of it.
            own = (await s.place(quantity=3, headers=buyer)).json()
            await act(s, own, "cancel", headers=buyer)
            buyer_mail = (await event_mails(mailbox, BUYER_EMAIL, 4))[3]
            assert "theo yêu cầu của bạn" in parts(buyer_mail)[0]
            grower_mail = await mailbox.wait(GROWER_EMAIL, 4)
            assert [m["Subject"] for m in grower_mail] == [
                f"Đơn mới {english['code']} – 150.000 ₫", f"Đơn mới {vietnamese['code']} – 150.000 ₫",
                f"Đơn mới {own['code']} – 150.000 ₫", f"Đơn {own['code']} đã bị hủy"]
            assert "theo yêu cầu của người mua" in parts(grower_mail[3])[0]
            assert len(await event_mails(mailbox, BUYER_EMAIL, 4)) == 4
            placed = [str(m["Subject"]) for m in mailbox.to(BUYER_EMAIL) if PLACED_SUBJECT.search(str(m["Subject"]))]
            assert sorted(placed) == sorted([f"Order {english['code']} is recorded – Vườn Sen Bà Tư",
                                             f"Đơn {vietnamese['code']} đã được ghi nhận – Vườn Sen Bà Tư",
                                             f"Đơn {own['code']} đã được ghi nhận – Vườn Sen Bà Tư"])


async def test_mail_goes_where_the_settings_say(db_urls) -> None:
    no_email = {**ORDER["contact"], "email": None}
    with smtp_server() as (port, mailbox):
        async with stack(db_urls, "http", smtp_url=f"smtp://127.0.0.1:{port}") as s:
            # No settings and no contact email: no mail to anyone, for any step.
            order = (await s.place(quantity=3, contact=no_email)).json()
            await act(s, order, "confirm")
            await s.wait_inbox(1)
            # Mail turned off: none, even with an address.
            await set_grower_email(s, email_enabled=False)
            await s.place(quantity=3, contact=no_email)
            await s.wait_inbox(2)
            await asyncio.sleep(0.5)
            assert mailbox.received == [] and await mail_jobs(db_urls) == []
            # In English, by the grower's choice.
            await set_grower_email(s, locale="en")
            order = (await s.place(quantity=3, contact=no_email)).json()
            mails = await mailbox.wait(GROWER_EMAIL)
            assert [m["Subject"] for m in mails] == [f"New order {order['code']} – ₫150,000"]
            assert "Anh Tư has placed order" in parts(mails[0])[0]


async def test_smtp_down_holds_nothing_back_and_the_mail_goes_once_it_is_up(db_urls) -> None:
    port = free_port()  # nothing listens here yet
    async with stack(db_urls, "http", smtp_url=f"smtp://127.0.0.1:{port}") as s:
        await set_grower_email(s)
        placed = await s.place(quantity=3, contact=NO_EMAIL)
        assert placed.status_code == 201, placed.text
        inbox = await s.wait_inbox(1, timeout=1.0)
        assert len(inbox["items"]) == 1, "the order reaches the inbox at once, mail or no mail"
        for _ in range(100):
            jobs = await mail_jobs(db_urls)
            if jobs and jobs[0].attempts >= 2:
                break
            await asyncio.sleep(0.1)
        job = jobs[0]
        assert job.state == "pending" and job.attempts >= 2 and job.sent_at is None
        assert "ConnectError" in job.last_error or "onnect" in job.last_error, job.last_error
        with smtp_server(port) as (_, mailbox):
            mails = await mailbox.wait(GROWER_EMAIL, timeout=20, settle=1.0)
            assert [m["Subject"] for m in mails] == [f"Đơn mới {placed.json()['code']} – 150.000 ₫"]
        [job] = await mail_jobs(db_urls)
        assert job.state == "sent" and job.sent_at is not None


async def test_a_refused_address_is_dead_at_once_and_can_be_replayed(db_urls) -> None:
    with smtp_server() as (port, mailbox):
        mailbox.refuse.add(GROWER_EMAIL)
        async with stack(db_urls, "http", smtp_url=f"smtp://127.0.0.1:{port}", mail_poll_interval=0.2) as s:
            await set_grower_email(s)
            await s.place(quantity=3, contact=NO_EMAIL)
            for _ in range(100):
                jobs = await mail_jobs(db_urls)
                if jobs and jobs[0].state == "dead":
                    break
                await asyncio.sleep(0.1)
            assert jobs[0].state == "dead" and jobs[0].attempts == 1 and "550" in jobs[0].last_error
            mailbox.refuse.clear()  # the address was fixed at the other end
            async with database(db_urls["notify"], "notify") as db:
                assert await replay_dead(db) == 1
            assert len(await mailbox.wait(GROWER_EMAIL)) == 1


async def test_without_smtp_url_mail_is_logged(db_urls, caplog) -> None:
    caplog.set_level(logging.INFO, logger="notify.mail")
    async with stack(db_urls, "http") as s:
        await set_grower_email(s)
        code = (await s.place(quantity=3, contact=NO_EMAIL)).json()["code"]
        for _ in range(50):
            jobs = await mail_jobs(db_urls)
            if jobs and jobs[0].state == "sent":
                break
            await asyncio.sleep(0.1)
        assert jobs[0].state == "sent"
    logged = [r.getMessage() for r in caplog.records if "SMTP_URL is empty" in r.getMessage()]
    assert len(logged) == 1 and GROWER_EMAIL in logged[0] and code in logged[0]


async def test_settings_are_each_account_s_own(db_urls) -> None:
    async with asgi_client(make_app("notify", db_urls)) as client:
        assert (await client.get(SETTINGS)).status_code == 401
        fresh = await client.get(SETTINGS, headers=GROWER)
        assert fresh.json() == {"email": None, "locale": "vi", "email_enabled": True, "updated_at": None}
        bad = await client.put(SETTINGS, json={"email": "not-an-address", "locale": "fr"}, headers=GROWER)
        assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
        assert {e["field"] for e in bad.json()["errors"]} == {"body.email", "body.locale"}
        saved = await client.put(SETTINGS, json={"email": GROWER_EMAIL, "locale": "en"}, headers=GROWER)
        assert saved.status_code == 200 and saved.json()["updated_at"]
        assert (await client.get(SETTINGS, headers=GROWER)).json()["email"] == GROWER_EMAIL
        other = auth("someone-else")
        assert (await client.get(SETTINGS, headers=other)).json()["email"] is None
        key = auth("grower-events-1", kind="api_key", scopes=["orders:read"])
        assert (await client.put(SETTINGS, json={"email": "x@example.vn"}, headers=key)).status_code == 403
        cleared = await client.put(SETTINGS, json={"email": None, "email_enabled": False}, headers=GROWER)
        assert cleared.json()["email"] is None and cleared.json()["locale"] == "vi"
        assert (await client.get("/api/v1/notifications", headers=GROWER)).status_code == 200


def test_smtp_url_forms() -> None:
    assert isinstance(make_transport(""), LogTransport)
    plain = make_transport("smtp://mailpit:1025")
    assert plain == SmtpTransport("mailpit", 1025)
    secured = make_transport("smtp://user%40shop:p%3Ass@mail.example.vn:587?starttls=1")
    assert secured == SmtpTransport("mail.example.vn", 587, "user@shop", "p:ss", use_tls=False, start_tls=True)
    assert "p:ss" not in str(secured)
    assert make_transport("smtps://mail.example.vn") == SmtpTransport("mail.example.vn", 465, use_tls=True)
    assert make_transport("smtp://mail.example.vn").port == 25
    with pytest.raises(ValueError, match="SMTP_URL"):
        make_transport("http://mail.example.vn")

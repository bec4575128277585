"""Password reset from the sign-in page, with real parts: a link mailed by notify to a real SMTP server
(aiosmtpd), a code sent through the eSMS.vn API to a local server standing in for eSMS. Each works
once, for ten minutes; wrong codes run out; asking is rate-limited per phone or email and per client
address; a reset signs the account out everywhere."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from common.db import Database
from gateway.identity.models import PasswordReset
from gateway.identity.sms import EsmsSms, LogSms, SmsFailed, make_sms
from gateway.ratelimit import Rule
from gateway.settings import GatewaySettings
from tests.support.databases import sqlite_urls
from tests.support.esms import Esms, esms_server
from tests.support.fullstack import PASSWORD, FullStack, full_stack
from tests.support.smtp import Mailbox, smtp_server
from tests.web.conftest import hidden

pytestmark = pytest.mark.asyncio(loop_scope="module")

NEW_PASSWORD = "Hoa-sen-moi-nở-2026"


@dataclass
class Resets:
    stack: FullStack
    mailbox: Mailbox
    esms: Esms
    db_urls: dict

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.stack.urls["gateway"], timeout=15, headers={"Accept": "text/html"})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def resets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Resets]:
    urls = sqlite_urls(tmp_path_factory.mktemp("reset"))
    with smtp_server() as (port, mailbox), esms_server() as esms:
        async with full_stack(urls, notify_settings={"smtp_url": f"smtp://127.0.0.1:{port}"},
                              **esms.settings) as stack:
            gateway = stack.apps["gateway"]
            gateway.state.settings.public_base_url = stack.urls["gateway"]
            # All requests come from 127.0.0.1: the per-address limit has a test of its own.
            gateway.state.rules["reset-ip"] = Rule("reset-ip", 1000, 3600)
            gateway.state.rules["reset-verify-ip"] = Rule("reset-verify-ip", 1000, 900)
            yield Resets(stack, mailbox, esms, urls)


async def ask(b: httpx.AsyncClient, login: str) -> httpx.Response:
    form = (await b.get("/grower/forgot")).text
    return await b.post("/grower/forgot", data={"csrf": hidden(form, "csrf"), "login": login})


async def send_code(b: httpx.AsyncClient, phone: str, code: str, password: str = NEW_PASSWORD) -> httpx.Response:
    form = (await b.get(f"/grower/reset-code?phone={phone}")).text
    return await b.post("/grower/reset-code", data={"csrf": hidden(form, "csrf"), "phone": phone, "code": code,
                                                    "password": password})


def code_in(sms: dict) -> str:
    return re.search(r"\b(\d{6})\b", sms["Content"]).group(1)


async def tokens(stack: FullStack, login: str, password: str = PASSWORD) -> httpx.Response:
    return await stack.gw.post("/api/v1/auth/token", json={"login": login, "password": password})


@contextlib.asynccontextmanager
async def gateway_db(urls: dict):
    db = Database(urls["gateway"], name="gateway")
    try:
        yield db
    finally:
        await db.dispose()


async def test_the_sign_in_page_links_to_it(resets: Resets) -> None:
    async with resets.browser() as b:
        login = (await b.get("/grower/login")).text
        assert '<a href="/grower/forgot">Quên mật khẩu?</a>' in login
        forgot = await b.get("/grower/forgot")
        assert forgot.status_code == 200 and "Nhập số di động để nhận mã qua SMS" in forgot.text


async def test_a_link_by_email_works_once_and_signs_out_every_session(resets: Resets) -> None:
    stack = resets.stack
    await stack.register("grower", "0913000001", "Chị Lan", email="chi.lan@example.vn")
    old = (await tokens(stack, "0913000001")).json()
    async with resets.browser() as b:
        sent = await ask(b, "Chi.Lan@example.vn")
        assert sent.status_code == 200 and "Hãy kiểm tra hộp thư" in sent.text and "10 phút" in sent.text
        [mail] = await resets.mailbox.wait("chi.lan@example.vn")
        assert mail["Subject"] == "Đặt lại mật khẩu Chợ Vườn"
        text = mail.get_body(("plain",)).get_content()
        assert "Chào Chị Lan" in text and "trong 10 phút" in text
        link = re.search(r"(http://\S+/grower/reset/[A-Za-z0-9_-]+)", text).group(1)
        assert link.startswith(stack.urls["gateway"]) and link in mail.get_body(("html",)).get_content()
        path = link[len(stack.urls["gateway"]):]

        form = await b.get(path)
        assert form.status_code == 200 and "Chọn mật khẩu mới" in form.text
        weak = await b.post(path, data={"csrf": hidden(form.text, "csrf"), "password": "matkhau123"})
        assert weak.status_code == 422 and "khó đoán hơn" in weak.text  # refused, the link not spent
        done = await b.post(path, data={"csrf": hidden(form.text, "csrf"), "password": NEW_PASSWORD})
        assert done.status_code == 303 and done.headers["location"] == "/grower/login?reset=1"
        assert "Đã đổi mật khẩu" in (await b.get("/grower/login?reset=1")).text

        again = await b.get(path)
        assert again.status_code == 410 and "Liên kết này không còn dùng được" in again.text
        replay = await b.post(path, data={"csrf": hidden(form.text, "csrf"), "password": "Another-Pass-2026!"})
        assert replay.status_code == 410
    # Every refresh token of the account is revoked; the new password signs in, the old one does not.
    refreshed = await stack.gw.post("/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await tokens(stack, "0913000001")).status_code == 401
    assert (await tokens(stack, "chi.lan@example.vn", NEW_PASSWORD)).status_code == 200


async def test_a_code_by_sms_through_esms_works_once_and_only_the_newest(resets: Resets) -> None:
    stack = resets.stack
    await stack.register("grower", "0913000002", "Anh Hải")
    second_device = (await tokens(stack, "0913000002")).json()
    async with resets.browser() as b:
        first = await ask(b, "0913 000 002")
        assert first.status_code == 303 and first.headers["location"] == "/grower/reset-code?phone=0913000002"
        [sms] = resets.esms.to("0913000002")
        assert (sms["SmsType"], sms["Brandname"], sms["IsUnicode"], sms["Sandbox"]) == ("2", "CHOVUON", "0", "0")
        assert sms["Content"].isascii() and "10 phut" in sms["Content"] and len(sms["Content"]) <= 160
        old_code = code_in(sms)
        page = await b.get(first.headers["location"])
        assert "chúng tôi đã gửi mã 6 chữ số qua SMS" in page.text and 'autocomplete="one-time-code"' in page.text

        await ask(b, "0913000002")  # asked again: the first code stops working
        newest = code_in(resets.esms.to("0913000002")[-1])
        if newest != old_code:
            stale = await send_code(b, "0913000002", old_code)
            assert stale.status_code == 422 and "Mã không đúng hoặc không còn dùng được" in stale.text
        wrong = await send_code(b, "0913000002", "000000" if newest != "000000" else "111111")
        assert wrong.status_code == 422
        ok = await send_code(b, "0913000002", newest)
        assert ok.status_code == 303 and ok.headers["location"] == "/grower/login?reset=1"
        twice = await send_code(b, "0913000002", newest, "Yet-Another-Pass-77")
        assert twice.status_code == 422
    assert (await stack.gw.post("/api/v1/auth/refresh",
                                json={"refresh_token": second_device["refresh_token"]})).status_code == 401
    assert (await tokens(stack, "0913000002", NEW_PASSWORD)).status_code == 200


async def test_a_code_expires_after_ten_minutes_and_after_five_wrong_tries(resets: Resets) -> None:
    stack = resets.stack
    await stack.register("grower", "0913000003", "Cô Ba")
    async with resets.browser() as b:
        await ask(b, "0913000003")
        code = code_in(resets.esms.to("0913000003")[-1])
        async with gateway_db(resets.db_urls) as db, db.sessionmaker() as session:
            rows = (await session.execute(select(PasswordReset.expires_at, PasswordReset.created_at)
                                          .where(PasswordReset.ended_at.is_(None)))).all()
            assert len(rows) == 1
            assert all(e - c == dt.timedelta(minutes=10) for e, c in rows)
            await session.execute(update(PasswordReset).where(PasswordReset.ended_at.is_(None))
                                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
            await session.commit()
        assert (await send_code(b, "0913000003", code)).status_code == 422  # ten minutes are over

        await ask(b, "0913000003")
        code = code_in(resets.esms.to("0913000003")[-1])
        wrong = "123456" if code != "123456" else "654321"
        for _ in range(5):
            assert (await send_code(b, "0913000003", wrong)).status_code == 422
        assert (await send_code(b, "0913000003", code)).status_code == 422  # five wrong tries ended it
    assert (await tokens(stack, "0913000003")).status_code == 200  # the password is unchanged


async def test_unknown_logins_get_the_same_reply_and_nothing_is_sent(resets: Resets) -> None:
    async with resets.browser() as b:
        by_phone = await ask(b, "0913999999")
        assert by_phone.status_code == 303 and by_phone.headers["location"] == "/grower/reset-code?phone=0913999999"
        assert resets.esms.to("0913999999") == []
        by_email = await ask(b, "nobody@example.vn")
        assert by_email.status_code == 200 and "Hãy kiểm tra hộp thư" in by_email.text
        assert await resets.mailbox.wait("nobody@example.vn", timeout=1.0) == []
        bad = await ask(b, "12345")
        assert bad.status_code == 422 and "Nhập số di động Việt Nam" in bad.text
        nothing = await send_code(b, "0913999999", "123456")
        assert nothing.status_code == 422


async def test_asking_is_rate_limited_per_phone_and_per_address(resets: Resets) -> None:
    stack = resets.stack
    await stack.register("grower", "0913000004", "Chú Tư")
    async with resets.browser() as b:
        for _ in range(3):  # reset-login: 3 per phone per 15 minutes
            assert (await ask(b, "0913000004")).status_code == 303
        limited = await ask(b, "0913000004")
        assert limited.status_code == 429 and "Thử quá nhiều lần" in limited.text
        assert len(resets.esms.to("0913000004")) == 3
        rules = stack.apps["gateway"].state.rules
        saved, rules["reset-ip"] = rules["reset-ip"], Rule("reset-ip-test", 2, 3600)
        try:
            assert (await ask(b, "0913100001")).status_code == 303
            assert (await ask(b, "nobody2@example.vn")).status_code == 200
            assert (await ask(b, "0913100002")).status_code == 429  # a third login from one address
        finally:
            rules["reset-ip"] = saved


async def test_an_sms_provider_that_fails_is_said_in_vietnamese(resets: Resets) -> None:
    await resets.stack.register("grower", "0913000005", "Bác Năm")
    resets.esms.down = True
    try:
        async with resets.browser() as b:
            failed = await ask(b, "0913000005")
            assert failed.status_code == 503 and "Chưa gửi được tin nhắn" in failed.text
    finally:
        resets.esms.down = False


async def test_esms_client_against_the_stand_in() -> None:
    with esms_server() as esms:
        good = EsmsSms(esms.url, "TESTAPIKEY", "TESTSECRET", "CHOVUON")
        await good.send("+84913000006", "Cho Vuon: ma 123456", "req-1")
        await good.send("+84913000006", "Cho Vuon: ma 123456", "req-1")  # a retry: "124", taken already
        assert [r["Phone"] for r in esms.to("0913000006")] == ["0913000006", "0913000006"]
        await good.aclose()
        wrong = EsmsSms(esms.url, "TESTAPIKEY", "nope", "CHOVUON")
        with pytest.raises(SmsFailed, match="CodeResult 101 Authorize Failed"):
            await wrong.send("+84913000006", "x", "req-2")
        await wrong.aclose()
    unreachable = EsmsSms(esms.url, "a", "b", "c", timeout=2)
    with pytest.raises(SmsFailed, match="could not be reached"):
        await unreachable.send("+84913000006", "x", "req-3")
    await unreachable.aclose()


async def test_in_development_the_code_is_logged_and_elsewhere_it_is_not(caplog) -> None:
    caplog.set_level(logging.INFO, logger="gateway.sms")
    dev = make_sms(GatewaySettings())
    assert isinstance(dev, LogSms)
    await dev.send("+84913000007", "ma 424242", "r")
    assert "424242" in caplog.text
    caplog.clear()
    await LogSms(show_text=False).send("+84913000007", "ma 535353", "r")
    assert "535353" not in caplog.text and "+84913000007" in caplog.text


def test_the_sms_url_names_the_provider_and_its_keys() -> None:
    esms = make_sms(GatewaySettings(sms_url="esms://K%2F1:S%40cret@rest.esms.vn?brandname=CHOVUON&sandbox=1"))
    assert isinstance(esms, EsmsSms)
    assert (esms.url, esms.api_key, esms.secret_key, esms.brandname, esms.sandbox) == (
        "https://rest.esms.vn/MainService.svc/json/SendMultipleMessage_V4_post_json/", "K/1", "S@cret", "CHOVUON", True)
    assert "S@cret" not in str(esms)
    for bad in ("esms://rest.esms.vn?brandname=X", "esms://k:s@rest.esms.vn", "speedsms://k:s@x?brandname=X"):
        with pytest.raises(ValueError, match="GATEWAY_SMS_URL"):
            make_sms(GatewaySettings(sms_url=bad))


async def test_both_ways_on_each_database_and_notify_queues_a_mail_once(db_urls) -> None:
    """The reset's table and updates on SQLite and on PostgreSQL; notify's /internal/mail takes the
    service credential only and queues one mail per request id, however often it is asked."""
    with smtp_server() as (port, mailbox), esms_server() as esms:
        async with full_stack(db_urls, notify_settings={"smtp_url": f"smtp://127.0.0.1:{port}"},
                              **esms.settings) as stack:
            stack.apps["gateway"].state.settings.public_base_url = stack.urls["gateway"]
            await stack.register("grower", "0913000008", "Chị Tám", email="chi.tam@example.vn")
            async with httpx.AsyncClient(base_url=stack.urls["gateway"], timeout=15,
                                         headers={"Accept": "text/html"}) as b:
                await ask(b, "0913000008")
                code = code_in(esms.to("0913000008")[-1])
                assert (await send_code(b, "0913000008", code)).status_code == 303
                await ask(b, "chi.tam@example.vn")
                [mail] = await mailbox.wait("chi.tam@example.vn")
                path = re.search(r"/grower/reset/[A-Za-z0-9_-]+", mail.get_body(("plain",)).get_content()).group(0)
                form = await b.get(path)
                done = await b.post(path, data={"csrf": hidden(form.text, "csrf"), "password": "Mot-Lan-Nua-2026"})
                assert done.status_code == 303
            assert (await tokens(stack, "0913000008", "Mot-Lan-Nua-2026")).status_code == 200

            notify = stack.urls["notify"]
            body = {"id": "6f1c3a9e-2f0b-4d7e-9b1a-0c2d3e4f5a6b", "recipient": "twice@example.vn",
                    "template": "password_reset",
                    "context": {"name": "Anh Hai", "link": "http://x.vn/grower/reset/abc", "expires_minutes": 10}}
            token = {"X-Service-Token": stack.apps["notify"].state.settings.service_token.get_secret_value()}
            async with httpx.AsyncClient(base_url=notify, timeout=15) as n:
                assert (await n.post("/internal/mail", json=body)).status_code in (401, 403)
                first = await n.post("/internal/mail", json=body, headers=token)
                again = await n.post("/internal/mail", json=body, headers=token)
                assert (first.status_code, first.json()["queued"]) == (202, "new")
                assert (again.status_code, again.json()["queued"]) == (200, "duplicate")
                odd = await n.post("/internal/mail", json={**body, "template": "order_placed_grower"}, headers=token)
                assert odd.status_code == 422
            assert len(await mailbox.wait("twice@example.vn", settle=1.0)) == 1

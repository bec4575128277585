"""A grower who forgot the password, on a phone in Vietnamese: "Quên mật khẩu?" on the sign-in page → the
mobile number → the code that came by SMS (through the eSMS API, to a local server standing in for
it) with a new password → signed in with it. Screenshots at each step; axe-core finds nothing serious."""

from __future__ import annotations

import re

import pytest

from tests.support.databases import sqlite_urls
from tests.support.esms import esms_server
from tests.support.fullstack import full_stack

NEW_PASSWORD = "Sen-trang-Thap-Muoi-9"


@pytest.fixture
async def stack_with_sms(tmp_path):
    with esms_server() as esms:
        async with full_stack(sqlite_urls(tmp_path), **esms.settings) as running:
            running.apps["gateway"].state.settings.public_base_url = running.urls["gateway"]
            running.esms = esms
            yield running


async def test_a_grower_resets_the_password_with_a_code_by_sms(stack_with_sms, page, axe, shot):
    stack = stack_with_sms
    base = stack.urls["gateway"]
    await stack.register("grower", "0914555666", "Chị Mai")

    await page.goto(base + "/grower/login")
    await page.get_by_role("link", name="Quên mật khẩu?").click()
    await page.wait_for_url("**/grower/forgot")
    await page.get_by_label(re.compile("^Số điện thoại hoặc email")).fill("0914 555 666")
    await shot(page, "grower-reset-01-forgot")
    assert await axe(page) == []
    await page.get_by_role("button", name="Gửi").click()
    await page.wait_for_url("**/grower/reset-code?phone=0914555666")

    [sms] = stack.esms.to("0914555666")
    code = re.search(r"\b(\d{6})\b", sms["Content"]).group(1)
    assert await page.get_by_label(re.compile("^Số điện thoại di động")).input_value() == "0914555666"
    # A mistyped code: said next to the field, the number kept.
    await page.get_by_label(re.compile("^Mã trong tin nhắn SMS")).fill("000000" if code != "000000" else "111111")
    await page.get_by_label(re.compile("^Mật khẩu mới")).fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Lưu mật khẩu mới").click()
    await page.wait_for_load_state()
    assert "Mã không đúng" in await page.locator("#code-err").inner_text()
    assert await page.get_by_label(re.compile("^Mã trong tin nhắn SMS")).get_attribute("aria-invalid") == "true"
    await shot(page, "grower-reset-02-wrong-code")
    assert await axe(page) == []
    await page.get_by_label(re.compile("^Mã trong tin nhắn SMS")).fill(code)
    await page.get_by_label(re.compile("^Mật khẩu mới")).fill(NEW_PASSWORD)
    await shot(page, "grower-reset-03-code")
    assert await axe(page) == []
    await page.get_by_role("button", name="Lưu mật khẩu mới").click()
    await page.wait_for_url("**/grower/login?reset=1")
    assert "Đã đổi mật khẩu" in await page.locator("[role=status]").inner_text()
    await shot(page, "grower-reset-04-changed")
    assert await axe(page) == []

    await page.get_by_label(re.compile("^Số điện thoại hoặc email")).fill("0914555666")
    await page.get_by_label(re.compile("^Mật khẩu")).fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/grower/shop")  # no shop yet: the desk sends the grower to open one
    # Only the mistyped code's page, answered 422 on purpose.
    assert [e for e in page.console_errors if "status of 422" not in e] == []

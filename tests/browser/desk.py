"""A grower with a shop, signed in on the phone: where the desk's browser tests start."""

from __future__ import annotations

import re

from tests.support.fullstack import PASSWORD, FullStack


async def grower_with_shop(stack: FullStack, page, phone: str, name: str, shop: str, **extra) -> dict:
    """Registers the grower, opens the shop (in Cần Thơ, pickup and a 30.000 ₫ fee unless ``extra`` says
    otherwise) and signs in at ``/grower/login``; returns the grower's API headers' holder."""
    grower = await stack.register("grower", phone.replace(" ", ""), name)
    made = await stack.gw.post("/api/v1/shops", headers=grower["headers"], json={
        "name": shop, "province_code": "92", "ward_code": "31135", "street": "8 Hòa Bình",
        "phone": phone.replace(" ", ""), "delivery": {"pickup": True, "flat_fee": 30000}, **extra})
    assert made.status_code == 201, made.text
    await page.goto(stack.urls["gateway"] + "/grower/login")
    await page.get_by_label(re.compile("^Số điện thoại hoặc email")).fill(phone)
    await page.get_by_label(re.compile("^Mật khẩu")).fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/grower/")
    return grower

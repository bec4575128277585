"""Web Push in Chromium: the desk shows the per-device switch, the VAPID key reaches the page, and a push
delivered to the service worker over the DevTools protocol (``ServiceWorker.deliverPushMessage``, as a
push service would) is shown as a notification in Vietnamese, with the order to open."""

from __future__ import annotations

import asyncio
import json

from tests.browser.test_installable import profile_page, sign_in_with_a_shop  # noqa: F401 (a fixture)


async def test_a_push_to_the_service_worker_shows_the_notification(stack, profile_page, axe, shot) -> None:  # noqa: F811
    page = profile_page
    base = stack.urls["gateway"]
    await page.context.grant_permissions(["notifications"], origin=base)
    cdp = await page.context.new_cdp_session(page)
    registrations: dict[str, str] = {}

    def seen(event: dict) -> None:
        for r in event["registrations"]:
            if not r.get("isDeleted"):
                registrations[r["scopeURL"]] = r["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", seen)
    await cdp.send("ServiceWorker.enable")
    await sign_in_with_a_shop(stack, page)
    assert await page.evaluate("() => navigator.serviceWorker.ready.then(r => r.scope)") == base + "/grower/"

    switch = page.get_by_label("Báo trên máy này khi có đơn mới và khi sắp hết hàng")
    await switch.wait_for(state="visible")
    key = await page.evaluate("() => fetch('/grower/push/key').then(r => r.json())")
    assert len(key["public_key"]) == 87  # 65 bytes, base64url
    await shot(page, "push-desk-switch")
    assert await axe(page) == []

    for _ in range(50):
        if base + "/grower/" in registrations:
            break
        await asyncio.sleep(0.1)
    payload = {"title": "Đơn mới CV-TEST01 – 90.000 ₫", "body": "Anh Tư đặt 2 món, thanh toán khi nhận hàng.",
               "url": "/grower/orders/7", "tag": "order-7", "type": "order.placed"}
    await cdp.send("ServiceWorker.deliverPushMessage", {
        "origin": base, "registrationId": registrations[base + "/grower/"], "data": json.dumps(payload)})
    shown = []
    for _ in range(50):
        shown = await page.evaluate("""() => navigator.serviceWorker.ready.then(r => r.getNotifications())
            .then(ns => ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data, lang: n.lang})))""")
        if shown:
            break
        await asyncio.sleep(0.1)
    assert shown == [{"title": payload["title"], "body": payload["body"], "tag": "order-7",
                      "data": {"url": "/grower/orders/7"}, "lang": "vi"}]
    assert page.console_errors == []

"""The grower's desk as an app on the phone: Chromium finds it installable (no installability error over
the DevTools protocol, as Lighthouse's old PWA audit asked), the service worker takes the desk's shell,
and with the network gone the desk shows its offline page, styled, in Vietnamese."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, chromium_installed
from tests.browser.conftest import PHONE as PHONE_CONTEXT
from tests.support.databases import require
from tests.support.fullstack import PASSWORD

PHONE = "0912 345 222"


@pytest.fixture
async def profile_page(tmp_path):
    """A phone page in a browser profile of its own on disk: Chromium offers to install an app only
    outside incognito, which every ``browser.new_context()`` is."""
    require(chromium_installed(), f"Chromium is not installed at {CHROMIUM}")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            **PHONE_CONTEXT)
        tab = context.pages[0] if context.pages else await context.new_page()
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        tab.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
        tab.console_errors = errors
        try:
            yield tab
        finally:
            await context.close()


async def sign_in_with_a_shop(stack, page) -> None:
    grower = await stack.register("grower", PHONE.replace(" ", ""), "Chị Hoa")
    shop = await stack.gw.post("/api/v1/shops", headers=grower["headers"], json={
        "name": "Vườn Sen Hoa", "province_code": "01", "ward_code": "00004", "street": "1 Hàng Đào",
        "phone": PHONE.replace(" ", ""), "delivery": {"pickup": True}})
    assert shop.status_code == 201, shop.text
    await page.goto(stack.urls["gateway"] + "/grower/login")
    await page.get_by_label(re.compile("^Số điện thoại hoặc email")).fill(PHONE)
    await page.get_by_label(re.compile("^Mật khẩu")).fill(PASSWORD)
    await page.get_by_role("button", name="Đăng nhập").click()
    await page.wait_for_url("**/grower/")


async def test_the_desk_is_installable_and_shows_an_offline_page_without_a_network(stack, profile_page, axe, shot):
    page = profile_page
    base = stack.urls["gateway"]
    await sign_in_with_a_shop(stack, page)
    # The service worker installs (the shell cached) and takes the page.
    scope = await page.evaluate("() => navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == base + "/grower/"
    await page.wait_for_function("() => navigator.serviceWorker.controller !== null || (location.reload(), false)",
                                 polling=1000, timeout=10_000)

    cdp = await page.context.new_cdp_session(page)
    manifest = await cdp.send("Page.getAppManifest")
    assert manifest["url"] == base + "/grower/manifest.webmanifest"
    assert manifest["errors"] == []
    installability = await cdp.send("Page.getInstallabilityErrors")
    assert installability["installabilityErrors"] == []

    parsed = (await stack.gw.get("/grower/manifest.webmanifest")).json()
    assert parsed["name"].startswith("Chợ Vườn") and parsed["lang"] == "vi"
    assert (parsed["start_url"], parsed["display"], parsed["theme_color"]) == ("/grower/", "standalone", "#1d5e2a")
    sizes = {(i["sizes"], i["purpose"]) for i in parsed["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("192x192", "maskable"), ("512x512", "maskable")} <= sizes
    for icon in parsed["icons"]:
        png = Image.open(io.BytesIO((await stack.gw.get(icon["src"])).content))
        assert f"{png.width}x{png.height}" == icon["sizes"] and png.format == "PNG"
    apple = await page.eval_on_selector_all("link[rel=apple-touch-icon]", "els => els.map(e => e.sizes.value)")
    assert "180x180" in apple
    cached = await page.evaluate("() => caches.keys().then(ks => Promise.all(ks.map(k => caches.open(k)"
                                 ".then(c => c.keys())))).then(lists => lists.flat().map(r => r.url))")
    assert base + "/grower/offline" in cached and any("/static/app." in u for u in cached)
    await shot(page, "grower-pwa-01-desk")

    # The network goes: the desk's pages answer with the offline page, from the shell.
    await page.context.set_offline(True)
    await page.goto(base + "/grower/products")
    assert await page.locator("h1").inner_text() == "Không có mạng"
    assert await page.evaluate("() => getComputedStyle(document.querySelector('.top')).backgroundColor") \
        == "rgb(29, 94, 42)"  # the stylesheet came from the cache
    await shot(page, "grower-pwa-02-offline")
    assert await axe(page) == []

    # Back online, "Thử lại" opens the desk again.
    await page.context.set_offline(False)
    await page.get_by_role("link", name="Thử lại").click()
    await page.wait_for_url("**/grower/")
    assert "Vườn Sen Hoa" in await page.locator("h1").inner_text()
    assert [e for e in page.console_errors if "ERR_INTERNET_DISCONNECTED" not in e] == []

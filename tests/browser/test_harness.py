"""The browser harness itself: the stack answers Chromium, the page is a phone in Vietnam, photos
uploaded through the API load from the stack, screenshots are written, console errors are caught, and
axe-core reports a real violation (so ``assert await axe(page) == []`` can fail)."""

from __future__ import annotations

import io
import struct

from PIL import Image

from tests.catalog.helpers import add_product, open_shop

PIXEL_PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIA"
             "X8jx0gAAAABJRU5ErkJggg==")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def flower_jpeg() -> bytes:
    im = Image.new("RGB", (1200, 900), (236, 120, 160))
    im.paste((250, 220, 60), (450, 300, 750, 600))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=85)
    return out.getvalue()


async def test_a_page_of_the_stack_loads_on_a_phone_and_is_screenshotted(stack, page, shot):
    reply = await page.goto(stack.urls["gateway"] + "/healthz")
    assert reply is not None and reply.status == 200
    assert '"service":"gateway"' in (await page.inner_text("body")).replace(" ", "")

    phone = await page.evaluate("""() => ({
        width: screen.width, ratio: devicePixelRatio, touch: navigator.maxTouchPoints > 0,
        language: navigator.language, zone: Intl.DateTimeFormat().resolvedOptions().timeZone})""")
    assert phone.pop("zone") in ("Asia/Ho_Chi_Minh", "Asia/Saigon")  # ICU still says Saigon
    assert phone == {"width": 390, "ratio": 3, "touch": True, "language": "vi-VN"}

    path = await shot(page, "harness-healthz")
    width, height = png_size(path.read_bytes())
    # A JSON reply has no viewport tag: the phone lays it out 980 CSS pixels wide, like any such page.
    layout = await page.evaluate("() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert (width, height) == (layout[0] * 3, max(layout[1], 844 * 980 // 390) * 3)
    assert path.parent.name == "screenshots" and path.parent.parent.name == "var"


async def test_photos_uploaded_through_the_api_load_from_the_stack(stack, page):
    grower = await stack.register("grower", "0912345678", "Bà Tư")
    shop = await open_shop(stack.gw, grower["headers"])
    assert shop["url"].startswith(stack.urls["gateway"] + "/s/"), shop
    product = await add_product(stack.gw, grower["headers"])
    resp = await stack.gw.post(f"/api/v1/products/{product['id']}/photos", headers=grower["headers"],
                               files={"file": ("sen.jpg", flower_jpeg(), "image/jpeg")})
    assert resp.status_code == 201, resp.text
    photo = resp.json()
    assert photo["url"].startswith(stack.urls["gateway"] + "/media/")

    await page.set_content('<meta name="viewport" content="width=device-width, initial-scale=1">'
                           f'<img id="p" alt="Súng Thái đỏ" src="{photo["url"]}" srcset="{photo["srcset"]}" '
                           'sizes="100vw">')
    await page.wait_for_function("() => { const i = document.getElementById('p');"
                                 " return i.complete && i.naturalWidth > 0; }")
    # 390 CSS pixels at 3× want 1170 device pixels: the smallest size that wide, else the widest.
    sizes = sorted(photo["sizes"], key=lambda size: size["width"])
    wanted = next((size for size in sizes if size["width"] >= 390 * 3), sizes[-1])
    assert await page.eval_on_selector("#p", "i => i.currentSrc") == wanted["url"]
    assert page.console_errors == []


async def test_console_errors_and_uncaught_exceptions_are_collected(page):
    await page.set_content("<script>console.error('hỏng rồi'); setTimeout(() => { throw new Error('bể'); });"
                           "</script>")
    await page.wait_for_timeout(100)
    assert len(page.console_errors) == 2, page.console_errors
    assert "hỏng rồi" in page.console_errors[0] and "bể" in page.console_errors[1]


async def test_axe_reports_a_missing_alt_text_and_passes_once_it_is_there(page, axe):
    head = '<!doctype html><html lang="vi"><head><title>Súng</title></head><body><main>'
    await page.set_content(f'{head}<img src="{PIXEL_PNG}"></main></body></html>')
    violations = await axe(page)
    assert [(v["id"], v["impact"], v["targets"]) for v in violations] == [("image-alt", "critical", ["img"])]
    assert violations[0]["help"]

    await page.set_content(f'{head}<img src="{PIXEL_PNG}" alt="Súng Thái đỏ"></main></body></html>')
    assert await axe(page) == []

"""The grower's desk as an installable app: the web app manifest, its icons, the service worker and the
page it shows when the network is gone.

- ``/grower/manifest.webmanifest``: Vietnamese name, ``start_url`` the desk, standalone, the theme
  colour; icons for Android (192 and 512 px, ``any`` and ``maskable``) and iOS (apple-touch-icon,
  120–180 px). The icons are drawn with Pillow once, on first use, and kept in memory.
- ``/grower/sw.js``: served from ``/grower/`` so its scope is the desk without any extra header. It
  keeps the shell (the hashed CSS and JavaScript, the icons, the offline page) in Cache Storage; a
  page the network cannot fetch is answered with the offline page. Pages themselves are never kept:
  they are private (``no-store``) and change with every order. The script names the assets' hashed
  addresses, so a new build is a new script, which the browser installs in place of the old one.

Everything is same-origin and script comes from files, never inline: the pages' Content-Security-
Policy (``default-src 'self'``, hence ``manifest-src``, ``worker-src`` and ``img-src`` 'self') allows
it unchanged. See docs/decisions/0013-installable-desk.md.
"""

from __future__ import annotations

import functools
import hashlib
import io
from typing import TYPE_CHECKING

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from common.errors import NotFound
from common.http_cache import etag_matches, weak_etag
from gateway.web import assets
from gateway.web.core import CSP, page, render_text

if TYPE_CHECKING:
    from PIL import Image

router = APIRouter(prefix="/grower", include_in_schema=False)

THEME = "#1d5e2a"  # the header's green (app.css --g)
BACKGROUND = "#ffffff"
SCOPE = "/grower/"
OFFLINE = "/grower/offline"
# name → (pixels, maskable): Android asks for 192 and 512 (its launcher crops a maskable one to its
# shape); iOS uses the apple-touch-icon of 180 (iPhone), 167 (iPad Pro), 152 (iPad), 120 (older).
ICONS = {"icon-192": (192, False), "icon-512": (512, False), "maskable-192": (192, True),
         "maskable-512": (512, True), "apple-touch-icon": (180, True), "apple-touch-icon-167": (167, True),
         "apple-touch-icon-152": (152, True), "apple-touch-icon-120": (120, True)}
ICON_CACHE = "public, max-age=604800"


def _lotus(size: int, full_bleed: bool) -> Image.Image:
    """A lotus on the theme's green, drawn two to four times larger and scaled down (smooth edges).
    ``full_bleed``: a square to the edge, the flower within the central 80 % circle a maskable icon
    keeps; else a rounded square on transparency."""
    from PIL import Image, ImageDraw  # here: Pillow (≈ 5 MB) only once an icon is drawn, then cached

    big = size * max(2, min(4, 1024 // size))
    im = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(im)
    green = tuple(int(THEME[i:i + 2], 16) for i in (1, 3, 5))
    if full_bleed:
        draw.rectangle((0, 0, big, big), fill=green)
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big // 5, fill=green)
    k = 1.0 if full_bleed else 1.25  # the flower's size against the icon's side
    cx, base_y = big / 2, big * (0.5 + 0.16 * k)
    length, width = big * 0.30 * k, big * 0.13 * k  # of one petal
    for angle, colour in ((-56, (240, 160, 190)), (56, (240, 160, 190)), (-28, (248, 192, 212)),
                          (28, (248, 192, 212)), (0, (255, 230, 238))):
        petal = Image.new("RGBA", (int(width), int(length * 2)), (0, 0, 0, 0))
        ImageDraw.Draw(petal).ellipse((0, 0, width - 1, length - 1), fill=colour)
        # The petal's lower end sits on the flower's base: the image turns about its centre, there.
        turned = petal.rotate(-angle, resample=Image.BICUBIC, expand=True)
        im.alpha_composite(turned, (int(cx - turned.width / 2), int(base_y - turned.height / 2)))
    # A lily pad under the flower.
    pad_w, pad_h = big * 0.56 * k, big * 0.09 * k
    ImageDraw.Draw(im).ellipse((cx - pad_w / 2, base_y - pad_h * 0.3, cx + pad_w / 2, base_y + pad_h * 0.7),
                               fill=(126, 196, 110))
    return im.resize((size, size), Image.LANCZOS)


@functools.cache
def icon_png(name: str) -> bytes:
    size, maskable = ICONS[name]
    im = _lotus(size, full_bleed=maskable)
    if name.startswith("apple"):
        im = im.convert("RGB")  # iOS fills transparency with black
    out = io.BytesIO()
    im.save(out, "PNG", optimize=True)
    return out.getvalue()


def manifest() -> dict:
    icons = [{"src": f"/grower/icons/{name}.png", "sizes": f"{size}x{size}", "type": "image/png",
              "purpose": "maskable" if maskable else "any"}
             for name, (size, maskable) in ICONS.items() if not name.startswith("apple")]
    return {
        "id": SCOPE,
        "name": "Chợ Vườn – Bàn bán hàng",
        "short_name": "Chợ Vườn",
        "description": "Nhận đơn, soạn hàng và quản lý giống cây của vườn bạn.",
        "lang": "vi",
        "dir": "ltr",
        "start_url": SCOPE,
        "scope": SCOPE,
        "display": "standalone",
        "orientation": "portrait",
        "theme_color": THEME,
        "background_color": BACKGROUND,
        "categories": ["business", "shopping"],
        "icons": icons,
    }


MANIFEST = orjson.dumps(manifest())


def _cached(request: Request, body: bytes, media_type: str, cache_control: str) -> Response:
    etag = weak_etag(body)
    headers = {"ETag": etag, "Cache-Control": cache_control, "X-Content-Type-Options": "nosniff"}
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get("/manifest.webmanifest")
async def web_manifest(request: Request) -> Response:
    return _cached(request, MANIFEST, "application/manifest+json", "public, max-age=3600")


@router.get("/icons/{name}.png")
async def icon(request: Request, name: str) -> Response:
    if name not in ICONS:
        raise NotFound("No such icon")
    return _cached(request, icon_png(name), "image/png", ICON_CACHE)


def shell() -> list[str]:
    """What the service worker keeps: enough to draw the offline page and the desk's look."""
    return [OFFLINE, assets.url("app.css"), assets.url("app.js"), assets.url("grower.js"),
            "/grower/manifest.webmanifest", "/grower/icons/icon-192.png"]


@router.get("/sw.js")
async def service_worker(request: Request) -> Response:
    kept = shell()
    cache = "cv-desk-" + hashlib.blake2b(" ".join(kept).encode(), digest_size=5).hexdigest()
    body = render_text(request, "grower_sw.js", shell=kept, offline=OFFLINE, cache=cache).encode()
    # Checked by the browser at every navigation (no-cache): a new build's script is seen at once.
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"}
    response = _cached(request, body, "text/javascript; charset=utf-8", "no-cache")
    response.headers.update(headers)
    return response


@router.get("/offline")
async def offline(request: Request) -> Response:
    """What the desk shows when the network is gone (kept by the service worker)."""
    return page(request, "grower_offline.html", public=True)

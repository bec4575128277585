"""The desk's app parts over HTTP: the manifest, the icons, the service worker (its scope, its cache of
this build's assets, the pages' CSP) and the offline page."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from gateway.web import assets
from tests.web.conftest import Market

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_manifest_icons_and_service_worker(market: Market) -> None:
    async with market.browser() as b:
        manifest = await b.get("/grower/manifest.webmanifest")
        assert manifest.headers["content-type"] == "application/manifest+json"
        data = manifest.json()
        assert data["start_url"] == data["scope"] == "/grower/" and data["display"] == "standalone"
        again = await b.get("/grower/manifest.webmanifest", headers={"If-None-Match": manifest.headers["etag"]})
        assert again.status_code == 304
        for icon in data["icons"]:
            png = await b.get(icon["src"])
            assert png.headers["content-type"] == "image/png"
            assert "{}x{}".format(*Image.open(io.BytesIO(png.content)).size) == icon["sizes"]
        apple = Image.open(io.BytesIO((await b.get("/grower/icons/apple-touch-icon.png")).content))
        assert apple.size == (180, 180) and apple.mode == "RGB"  # no transparency for iOS to turn black
        assert (await b.get("/grower/icons/nope.png")).status_code == 404

        sw = await b.get("/grower/sw.js")
        assert sw.headers["content-type"].startswith("text/javascript")
        assert sw.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in sw.headers["content-security-policy"]
        for kept in (assets.url("app.css"), assets.url("app.js"), assets.url("grower.js"), "/grower/offline"):
            assert f'"{kept}"' in sw.text

        login = (await b.get("/grower/login")).text
        assert '<link rel="manifest" href="/grower/manifest.webmanifest">' in login
        assert assets.url("grower.js") in login
        offline = await b.get("/grower/offline")
        assert offline.status_code == 200 and "Không có mạng" in offline.text

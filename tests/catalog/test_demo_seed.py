"""The demo nursery ships with photos drawn by the seed (no download): every variety has one, in all
its sizes, served like an uploaded photo."""

from __future__ import annotations

import httpx
from PIL import Image

from services.catalog.app import create_app
from services.catalog.seed import DEMO_PRODUCTS, seed
from services.catalog.settings import CatalogSettings
from tests.support.databases import sqlite_urls


async def test_the_demo_nursery_has_a_drawn_photo_on_every_variety(tmp_path) -> None:
    settings = CatalogSettings(database_url=sqlite_urls(tmp_path)["catalog"], media_dir=str(tmp_path / "media"))
    assert "seeded" in await seed(settings)
    assert "already there" in await seed(settings)  # safe to run again
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://catalog") as client:
        products = (await client.get("/api/v1/products", params={"limit": 50})).json()["items"]
        assert len(products) == len(DEMO_PRODUCTS)
        for product in products:
            assert len(product["photos"]) == 1, product["name"]
            photo = product["photos"][0]
            assert [s["width"] for s in photo["sizes"]] == [320, 560, 800, 1200]  # drawn at 1200 × 1200
            media = await client.get("/media/" + photo["url"].rsplit("/media/", 1)[1])
            assert media.status_code == 200 and media.headers["content-type"] == "image/webp"
    files = [f for f in (tmp_path / "media").rglob("*") if f.is_file()]
    assert files and all(f.stat().st_size < 200_000 for f in files)
    with Image.open(next(f for f in files if f.suffix == ".jpg")) as og:
        assert og.size == (1200, 630)  # the link preview

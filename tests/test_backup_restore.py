"""The restore drill: place orders, back up while the apps run (deploy/backup.py, as docs/operations.md
says), wipe every database and the photos, restore, start the apps again: every order, stock level,
notification and photo is back, and the grower signs in with the same password. On SQLite (the
online backup API) and on PostgreSQL (pg_dump per app)."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from tests.catalog.helpers import BANK, SHOP
from tests.events.stack import ORDER
from tests.support.databases import PostgresDatabases, pg_reachable, require, sqlite_urls
from tests.support.fullstack import PASSWORD, full_stack
from tests.support.servers import ROOT

BACKUP = ROOT / "deploy" / "backup.py"


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1200, 900), (40, 160, 90)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def run_backup(command: str, folder, urls: dict[str, str], media, tmp_path) -> str:
    env = {"PATH": "/usr/bin:/bin", "CATALOG_MEDIA_DIR": str(media),
           **{f"{app.upper()}_DATABASE_URL": url for app, url in urls.items()}}
    done = subprocess.run([sys.executable, str(BACKUP), command, str(folder)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


async def snapshot(stack, grower: dict, product_id: int) -> dict:
    gw = stack.gw
    orders = (await gw.get("/api/v1/orders", params={"limit": 100}, headers=grower)).json()["items"]
    product = (await gw.get(f"/api/v1/products/{product_id}")).json()
    notes = (await gw.get("/api/v1/notifications", params={"limit": 100}, headers=grower)).json()["items"]
    photos = {}
    for photo in product["photos"]:
        for size in photo["sizes"]:
            path = "/media/" + size["url"].rsplit("/media/", 1)[1]
            resp = await gw.get(path)
            assert resp.status_code == 200, (path, resp.status_code)
            photos[path] = resp.content
    return {"orders": sorted((o["code"], o["status"], o["total"]) for o in orders),
            "stock": sorted((v["id"], v["stock"]) for v in product["variants"]),
            "notifications": sorted((n["id"], n["type"]) for n in notes),
            "photos": photos}


@pytest.mark.parametrize("shape", ["sqlite", "postgresql"])
async def test_every_order_stock_level_notification_and_photo_comes_back(shape, tmp_path, monkeypatch) -> None:
    if shape == "postgresql":
        why = await asyncio.to_thread(pg_reachable)
        require(why is None, why or "")
        pg = PostgresDatabases()
        await asyncio.to_thread(pg.create)
        urls = pg.urls
    else:
        pg, urls = None, sqlite_urls(tmp_path / "db")
        (tmp_path / "db").mkdir()
    media = tmp_path / "media"
    monkeypatch.setenv("CATALOG_MEDIA_DIR", str(media))
    try:
        async with full_stack(urls) as stack:
            grower = (await stack.register("grower", "0912345670", "Chị Tư"))["headers"]
            shop = await stack.gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=grower)
            assert shop.status_code == 201, shop.text
            product = (await stack.gw.post("/api/v1/products", headers=grower, json={
                "name": "Súng Thái đỏ", "description": "Hoa đỏ", "category": "water_lily", "status": "active",
                "variants": [{"label": "Củ giống", "retail_price": 45000, "stock": 50, "min_order_quantity": 1},
                             {"label": "Chậu", "retail_price": 150000, "stock": 9}]})).json()
            photo = await stack.gw.post(f"/api/v1/products/{product['id']}/photos",
                                        headers={**grower, "Content-Type": "image/jpeg"}, content=jpeg())
            assert photo.status_code == 201, photo.text
            for quantity in (2, 3, 4):
                placed = await stack.gw.post("/api/v1/orders", headers=stack.key(), json={
                    **ORDER, "lines": [{"variant_id": v["id"], "quantity": quantity} for v in product["variants"]]})
                assert placed.status_code == 201, placed.text
            for _ in range(100):  # the grower's inbox fills as the events arrive
                before = await snapshot(stack, grower, product["id"])
                if len(before["notifications"]) >= 3:
                    break
                await asyncio.sleep(0.1)
            assert len(before["orders"]) == 3 and len(before["notifications"]) >= 3, before["notifications"]
            assert before["stock"] == sorted([(product["variants"][0]["id"], 41), (product["variants"][1]["id"], 0)])
            assert len(before["photos"]) >= 3
            # Online: the apps are still running.
            out = run_backup("create", tmp_path / "backup", urls, media, tmp_path)
        assert "gateway, catalog, orders, notify" in out
        manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
        assert {e["kind"] for e in manifest["databases"].values()} == {shape}

        # Wipe everything.
        shutil.rmtree(media)
        if pg is not None:
            await asyncio.to_thread(pg.drop)
            await asyncio.to_thread(pg.create)
        else:
            shutil.rmtree(tmp_path / "db")
        async with full_stack(urls) as empty:  # proves the wipe: nobody can sign in, nothing is there
            signed = await empty.gw.post("/api/v1/auth/token", json={"login": "0912345670", "password": PASSWORD})
            assert signed.status_code == 401
        if pg is not None:
            await asyncio.to_thread(pg.drop)
            await asyncio.to_thread(pg.create)
        else:
            shutil.rmtree(tmp_path / "db")
            (tmp_path / "db").mkdir()
        # A damaged backup is refused before anything is touched.
        damaged = tmp_path / "damaged"
        shutil.copytree(tmp_path / "backup", damaged)
        with (damaged / manifest["databases"]["orders"]["file"]).open("ab") as f:
            f.write(b"x")
        env = {"PATH": "/usr/bin:/bin", "CATALOG_MEDIA_DIR": str(media),
               **{f"{app.upper()}_DATABASE_URL": url for app, url in urls.items()}}
        refused = await asyncio.to_thread(subprocess.run, [sys.executable, str(BACKUP), "restore", str(damaged)],
                                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "damaged" in refused.stderr

        run_backup("restore", tmp_path / "backup", urls, media, tmp_path)
        async with full_stack(urls) as again:
            token = await again.gw.post("/api/v1/auth/token", json={"login": "0912345670", "password": PASSWORD})
            assert token.status_code == 200, token.text
            grower = {"Authorization": f"Bearer {token.json()['access_token']}"}
            after = await snapshot(again, grower, product["id"])
            assert after == before
            # …and the restored marketplace goes on: the next order takes stock from the restored level.
            more = await again.gw.post("/api/v1/orders", headers=again.key(), json={
                **ORDER, "lines": [{"variant_id": product["variants"][0]["id"], "quantity": 2}]})
            assert more.status_code == 201, more.text
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.drop)



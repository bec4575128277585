"""Retiring a data key: ``python -m <app> reencrypt`` moves every stored value to the first key of the
list, after which the old key can be dropped and nothing is lost (docs/operations.md, Rotating keys)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys

import asyncpg
import pytest

from common.crypto import FieldCipher
from services.catalog.settings import CatalogSettings
from services.orders.settings import OrdersSettings
from tests.catalog.helpers import BANK, PRODUCT, SHOP
from tests.events.stack import ORDER
from tests.support.databases import PostgresDatabases, pg_reachable, require, sqlite_urls
from tests.support.fullstack import full_stack
from tests.support.servers import ROOT

NEW = "the-new-data-key-" + "n" * 30
OLD = {"catalog": CatalogSettings().data_key.get_secret_value(), "orders": OrdersSettings().data_key.get_secret_value()}


def reencrypt(app: str, url: str, keys: str, tmp_path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), f"{app.upper()}_DATABASE_URL": url,
           f"{app.upper()}_DATA_KEY": keys}
    return subprocess.run([sys.executable, "-m", f"services.{app}", "reencrypt"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("shape", ["sqlite", "postgresql"])
async def test_stored_values_move_to_the_new_key(shape, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CATALOG_MEDIA_DIR", str(tmp_path / "media"))
    pg = None
    if shape == "postgresql":
        why = await asyncio.to_thread(pg_reachable)
        require(why is None, why or "")
        pg = PostgresDatabases()
        await asyncio.to_thread(pg.create)
    try:
        await _drill(pg.urls if pg else sqlite_urls(tmp_path), pg, tmp_path)
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.drop)


async def _drill(urls: dict[str, str], pg, tmp_path) -> None:
    async with full_stack(urls) as stack:  # everything stored under the development keys
        grower = (await stack.register("grower", "0912345670"))["headers"]
        assert (await stack.gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=grower)).status_code == 201
        product = (await stack.gw.post("/api/v1/products", json=PRODUCT, headers=grower)).json()
        order = await stack.gw.post("/api/v1/orders", headers=stack.key(), json={
            **ORDER, "payment_method": "bank_transfer",
            "lines": [{"variant_id": product["variants"][0]["id"], "quantity": 2}]})
        assert order.status_code == 201, order.text

    new_only = FieldCipher(NEW)

    query = {"catalog": "SELECT bank_account_encrypted FROM shops",
             "orders": "SELECT bank, tracking_token_encrypted FROM orders"}
    # What each stored value decrypts to: the shop's account; for orders also the buyer's link's token.
    plain = {"catalog": [BANK["account_number"]],
             "orders": [BANK["account_number"], order.json()["tracking_url"].rsplit("/t/", 1)[1]]}

    def tokens(app: str) -> list[str]:
        if pg is None:
            with sqlite3.connect(urls[app].split(":///", 1)[1]) as db:
                rows = [tuple(r) for r in db.execute(query[app])]
        else:
            async def fetch() -> list:
                conn = await asyncpg.connect(pg.dsns[app])
                try:
                    return [tuple(r) for r in await conn.fetch(query[app])]
                finally:
                    await conn.close()
            rows = asyncio.run(fetch())
        return [r[0] for r in rows] if app == "catalog" else [json.loads(r[0])["account_encrypted"] for r in rows] \
            + [r[1] for r in rows]

    for app in ("catalog", "orders"):
        before = await asyncio.to_thread(tokens, app)
        assert [FieldCipher(OLD[app]).decrypt(t) for t in before] == plain[app]
        # A list that cannot read what is stored: refused, nothing changed.
        refused = await asyncio.to_thread(reencrypt, app, urls[app], NEW, tmp_path)
        assert refused.returncode != 0 and "nothing was changed" in refused.stderr, refused.stderr
        assert await asyncio.to_thread(tokens, app) == before
        done = await asyncio.to_thread(reencrypt, app, urls[app], f"{NEW},{OLD[app]}", tmp_path)
        count = len(plain[app])
        assert done.returncode == 0 and f"{count} values re-encrypted" in done.stdout, done.stdout + done.stderr
        after = await asyncio.to_thread(tokens, app)
        assert [new_only.decrypt(t) for t in after] == plain[app]  # the old key is no longer needed
        again = await asyncio.to_thread(reencrypt, app, urls[app], f"{NEW},{OLD[app]}", tmp_path)
        assert "0 values re-encrypted" in again.stdout  # already under the new key: left alone


def test_notify_names_its_encrypted_columns_rightly(tmp_path) -> None:
    """The webhook secrets' table and columns exist (an empty database, migrated): 0 values, no error."""
    url = sqlite_urls(tmp_path)["notify"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NOTIFY_DATABASE_URL": url}
    migrated = subprocess.run([sys.executable, "-m", "services.notify", "migrate"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
    assert migrated.returncode == 0, migrated.stderr
    done = subprocess.run([sys.executable, "-m", "services.notify", "reencrypt"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "0 values re-encrypted" in done.stdout, done.stdout + done.stderr

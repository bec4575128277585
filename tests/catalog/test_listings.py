"""Anonymous listings are kept until the catalog changes, and never served stale
(services/catalog/listings.py, docs/decisions/0027-catalog-reads.md)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from sqlalchemy import text

from common.http_cache import weak_etag
from common.pagination import Page
from services.catalog.listings import CHANNEL, RECENT_STOCK_CHANGES, ListingCache, item_key, listing_tail, writes
from services.catalog.products import service
from services.catalog.products.page_json import page_body
from services.catalog.products.schemas import ProductPublic
from tests.apps import make_app
from tests.catalog.helpers import add_product, open_shop
from tests.catalog.test_photos import png_bytes, upload
from tests.conftest import asgi_client
from tests.support.auth import auth

GROWER = auth("grower-1")
LIST = "/api/v1/products?limit=20"


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls, reservation_sweep_interval=0)
    async with asgi_client(app) as client:
        client.app = app
        client.service = {"X-Service-Token": app.state.settings.service_token.get_secret_value()}
        await open_shop(client, GROWER)
        client.product = await add_product(client, GROWER)
        await until_listening(app)
        yield client


async def until_listening(app) -> None:
    """PostgreSQL: the cache is on once the change listener is connected (at start, within a round)."""
    for _ in range(100):
        if app.state.listings.enabled:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the listing cache never came on")


def price_of(listing: dict) -> int:
    return listing["items"][0]["variants"][0]["retail_price"]


async def test_a_repeated_listing_is_kept_and_answers_304_from_the_cache(catalog) -> None:
    cache = catalog.app.state.listings
    first = await catalog.get(LIST)
    hits = cache.hits
    again = await catalog.get(LIST)
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["cache-control"] == "public, max-age=60"
    assert cache.hits == hits + 1

    def kept_headers(resp):  # the endpoint's reply and the kept one carry the same headers
        return sorted((k, v) for k, v in resp.headers.multi_items() if k != "x-request-id")
    assert kept_headers(again) == kept_headers(first)
    unchanged = await catalog.get(LIST, headers={"If-None-Match": first.headers["etag"]})
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert cache.hits == hits + 2
    cache.changed()  # the endpoint answers the same 304
    by_endpoint = await catalog.get(LIST, headers={"If-None-Match": first.headers["etag"]})
    assert by_endpoint.status_code == 304 and kept_headers(by_endpoint) == kept_headers(unchanged)
    assert cache.hits == hits + 2


async def test_a_price_change_shows_in_the_next_listing(catalog) -> None:
    before = await catalog.get(LIST)
    await catalog.get(LIST)
    assert price_of(before.json()) == 45000
    variants = catalog.product["variants"]
    resp = await catalog.patch(f"/api/v1/products/{catalog.product['id']}", headers=GROWER, json={"variants": [
        {"id": variants[0]["id"], "label": "Củ giống", "retail_price": 55000, "wholesale_tiers": []},
        {"id": variants[1]["id"], "label": "Chậu 30 cm", "retail_price": 150000}]})
    assert resp.status_code == 200, resp.text
    after = await catalog.get(LIST, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and price_of(after.json()) == 55000
    assert after.headers["etag"] != before.headers["etag"]


async def test_stock_taken_by_a_reservation_shows_in_the_next_listing(catalog) -> None:
    """Reservations change stock with UPDATE statements, not through the ORM: caught all the same."""
    await catalog.get(LIST)
    tuber = catalog.product["variants"][0]["id"]
    resp = await catalog.post("/internal/reservations", headers=catalog.service, json={
        "id": uuid.uuid4().hex, "lines": [{"variant_id": tuber, "quantity": 7}]})
    assert resp.status_code in (200, 201), resp.text
    assert (await catalog.get(LIST)).json()["items"][0]["variants"][0]["stock"] == 93


async def reserve(catalog, variant_id: int, quantity: int) -> str:
    reservation_id = uuid.uuid4().hex
    resp = await catalog.post("/internal/reservations", headers=catalog.service, json={
        "id": reservation_id, "lines": [{"variant_id": variant_id, "quantity": quantity}]})
    assert resp.status_code == 201, resp.text
    return reservation_id


async def test_an_order_drops_only_the_replies_that_show_what_it_reserved(catalog) -> None:
    """A reservation changes its variants' stock and nothing else: the listings and product pages
    that do not show its product stay kept, the ones that do show the new stock at once (a listing
    reads again only that product, and keeps it as its page); committing it changes nothing they show."""
    cache = catalog.app.state.listings
    other = await add_product(catalog, GROWER, name="Sen Quan Âm")  # the newest: alone on ?limit=1
    first, other_page = "/api/v1/products?limit=1", f"/api/v1/products/{other['id']}"
    page = f"/api/v1/products/{catalog.product['id']}"
    for path in (LIST, first, page, other_page):
        await catalog.get(path)
    hits = cache.hits
    reservation_id = await reserve(catalog, catalog.product["variants"][0]["id"], 7)
    assert [p["id"] for p in (await catalog.get(first)).json()["items"]] == [other["id"]]
    await catalog.get(other_page)
    assert cache.hits == hits + 2
    kept = cache.stale("?limit=20")
    assert kept is not None and cache.missing(kept) == [catalog.product["id"]]
    listed = (await catalog.get(LIST)).json()
    assert [p["id"] for p in listed["items"]] == list(kept.items)
    assert {p["id"]: p for p in listed["items"]}[catalog.product["id"]]["variants"][0]["stock"] == 93
    assert cache.hits == hits + 2  # read again: that product only
    page_again = await catalog.get(page)
    assert page_again.json()["variants"][0]["stock"] == 93 and cache.hits == hits + 3  # kept by the listing
    assert page_again.content == orjson.dumps(next(p for p in listed["items"] if p["id"] == catalog.product["id"]))
    resp = await catalog.post(f"/internal/reservations/{reservation_id}/commit", headers=catalog.service)
    assert resp.status_code == 200, resp.text
    for path in (LIST, first, page, other_page):
        await catalog.get(path)
    assert cache.hits == hits + 7


async def test_a_variant_sold_out_drops_every_kept_reply(catalog) -> None:
    """Stock reaching zero changes the product's in_stock, which decides what the listings filtered
    or sorted by it hold: everything is read again."""
    in_stock = "/api/v1/products?in_stock=true"
    other = await add_product(catalog, GROWER, name="Sen Quan Âm", variants=[
        {"label": "Củ giống", "retail_price": 60000, "stock": 2}])
    assert {p["id"] for p in (await catalog.get(in_stock)).json()["items"]} == {catalog.product["id"], other["id"]}
    await catalog.get(in_stock)
    generation = catalog.app.state.listings.generation
    await reserve(catalog, other["variants"][0]["id"], 2)
    assert catalog.app.state.listings.generation > generation
    assert [p["id"] for p in (await catalog.get(in_stock)).json()["items"]] == [catalog.product["id"]]


async def test_a_product_page_is_kept_for_anonymous_callers_only_and_shows_a_change_at_once(catalog) -> None:
    cache = catalog.app.state.listings
    page = f"/api/v1/products/{catalog.product['id']}"
    first = await catalog.get(page)
    hits = cache.hits
    again = await catalog.get(page)
    assert (again.content, again.headers["etag"]) == (first.content, first.headers["etag"])
    assert again.headers["cache-control"] == "public, max-age=60" and cache.hits == hits + 1
    assert (await catalog.get(page, headers={"If-None-Match": first.headers["etag"]})).status_code == 304
    mine = await catalog.get(page, headers=GROWER)
    assert mine.headers["cache-control"] == "private, no-cache" and cache.hits == hits + 2
    resp = await catalog.patch(page, headers=GROWER, json={"name": "Súng Thái đỏ rực"})
    assert resp.status_code == 200, resp.text
    assert (await catalog.get(page)).json()["name"] == "Súng Thái đỏ rực"
    resp = await catalog.patch(page, headers=GROWER, json={"status": "draft"})
    assert resp.status_code == 200, resp.text
    assert (await catalog.get(page)).status_code == 404
    assert (await catalog.get(page, headers=GROWER)).status_code == 200


async def test_the_shops_are_kept_through_orders_and_show_a_shop_change_at_once(catalog) -> None:
    cache = catalog.app.state.listings
    shops = "/api/v1/shops"
    first = await catalog.get(shops)
    hits = cache.hits
    await reserve(catalog, catalog.product["variants"][0]["id"], 1)
    again = await catalog.get(shops)
    assert (again.content, again.headers["etag"]) == (first.content, first.headers["etag"])
    assert cache.hits == hits + 1
    resp = await catalog.patch("/api/v1/shops/mine", headers=GROWER, json={"name": "Vườn Sen Bà Tư Mới"})
    assert resp.status_code == 200, resp.text
    assert (await catalog.get(shops)).json()["items"][0]["name"] == "Vườn Sen Bà Tư Mới"


async def test_a_write_by_plain_sql_moves_the_generation_and_a_signed_in_caller_is_never_served_from_it(
        catalog) -> None:
    cache = catalog.app.state.listings
    await catalog.get(LIST)
    async with catalog.app.state.db.engine.begin() as conn:
        await conn.execute(text("UPDATE variants SET stock = 3 WHERE id = :id"),
                           {"id": catalog.product["variants"][0]["id"]})
    assert (await catalog.get(LIST)).json()["items"][0]["variants"][0]["stock"] == 3
    hits = cache.hits
    await catalog.get(LIST, headers=GROWER)
    await catalog.get(LIST + "&mine=true", headers=GROWER)
    assert cache.hits == hits


async def test_a_listing_read_while_a_write_commits_is_not_kept(catalog) -> None:
    cache = catalog.app.state.listings
    since = cache.now()
    cache.changed()  # a write ran while the listing was being read
    cache.put("?limit=20", since, [1], b"{}", 'W/"old"')
    assert cache.get("?limit=20") is None


def test_a_reply_read_while_the_stock_it_shows_changed_is_not_kept() -> None:
    cache = ListingCache()
    since = cache.now()
    cache.stock_changed({7})  # a reservation of product 7 ran while the replies were being read
    cache.put("?shop_id=1", since, [7, 8], b"{}", 'W/"7"')
    cache.put("?shop_id=2", since, [9], b"{}", 'W/"9"')
    assert cache.get("?shop_id=1") is None
    assert cache.get("?shop_id=2") == (b"{}", 'W/"9"')
    cache.stock_changed({9})
    assert cache.get("?shop_id=2") is None
    # Read before more stock changes than are remembered: whatever it shows, not kept.
    since = cache.now()
    for _ in range(RECENT_STOCK_CHANGES + 1):
        cache.stock_changed({1000})
    cache.put("?shop_id=3", since, [11], b"{}", 'W/"11"')
    assert cache.get("?shop_id=3") is None


def test_a_listing_is_put_together_again_from_its_items_after_a_stock_change() -> None:
    """A stock change drops the pages of its products; a listing that shows them keeps its products
    and their order, and is answered again once each of its items is kept again (read since the change)."""
    cache = ListingCache()
    body, etag = cache.put_listing("?shop_id=1", cache.now(), {7: b'{"id":7}', 8: b'{"id":8}'}, listing_tail(None))
    assert body == orjson.dumps({"items": [{"id": 7}, {"id": 8}], "next_cursor": None}) and etag == weak_etag(body)
    assert cache.get(item_key(8)) == (b'{"id":8}', weak_etag(b'{"id":8}'))  # kept as its product's page
    cache.stock_changed({7})
    assert cache.get("?shop_id=1") is None and cache.get(item_key(7)) is None
    stale = cache.stale("?shop_id=1")
    assert stale is not None and stale.items == (7, 8) and cache.missing(stale) == [7]
    since = cache.now()
    cache.stock_changed({8})  # while product 7 was read again: 8 must be read again too
    assert cache.put(item_key(7), since, (7,), b'{"id":7,"stock":1}', "e7")
    assert not cache.put(item_key(8), since, (8,), b'{"id":8}', "e8") and cache.get("?shop_id=1") is None
    cache.put(item_key(8), cache.now(), (8,), b'{"id":8,"stock":2}', "e8")
    again, again_etag = cache.get("?shop_id=1")
    assert again == b'{"items":[{"id":7,"stock":1},{"id":8,"stock":2}],"next_cursor":null}'
    assert again_etag == weak_etag(again) != etag
    cache.changed()  # anything else: the listing's products or order may have changed too
    assert cache.stale("?shop_id=1") is None and cache.get("?shop_id=1") is None


def test_a_reservation_taking_stock_before_it_names_its_products_moves_the_tick_once() -> None:
    """A statement marked stock_of(LATER) counts as a change of no product until took_stock names
    them: one tick and one remembered change per variant taken, not two (the window of recent
    changes, against which replies being computed are checked, lasts as long as before)."""
    cache = ListingCache()
    since = cache.now()
    cache.put("/api/v1/products/7", since, [7], b"{}", "e")
    info: dict = {}
    cache.stock_changed(())  # the UPDATE as it runs
    assert cache.tick == since.tick and cache.get("/api/v1/products/7") is not None
    cache.took_stock(info, (7,))  # its row read: product 7
    assert cache.tick == since.tick + 1 and len(cache._recent) == 1
    assert cache.get("/api/v1/products/7") is None
    assert not cache.put("/api/v1/products/7", since, [7], b"{}", "e")  # read before the change: not kept
    assert cache.notify_along(info) == (CHANNEL, f"{cache.token} 7") and cache.notify_along(info) is None


def test_another_replicas_stock_change_drops_only_what_shows_those_products() -> None:
    cache = ListingCache()
    for key, products in (("?shop_id=1", [1, 2]), ("?shop_id=2", [3]), ("/api/v1/products/2", [2])):
        cache.put(key, cache.now(), products, b"{}", "e")
    cache.notified(None, 0, CHANNEL, "other-replica 2,5")
    assert [cache.get(k) is not None for k in ("?shop_id=1", "?shop_id=2", "/api/v1/products/2")] == [
        False, True, False]
    cache.notified(None, 0, CHANNEL, f"{cache.token} 3")  # its own: already applied
    assert cache.get("?shop_id=2") is not None
    cache.notified(None, 0, CHANNEL, "other-replica")  # anything else: everything
    assert cache.get("?shop_id=2") is None


async def test_another_replica_on_the_same_database_sees_a_change_at_once(catalog, db_urls, backend) -> None:
    """Two catalog processes on one PostgreSQL database: a price changed through one is in the
    other's next listing (its kept copy dropped by the change's NOTIFY), and so is stock taken."""
    if backend != "postgresql":
        pytest.skip("several replicas run on PostgreSQL only")
    other = make_app("catalog", db_urls, reservation_sweep_interval=0)
    async with asgi_client(other) as replica:
        await until_listening(other)
        assert price_of((await replica.get(LIST)).json()) == 45000
        await replica.get(LIST)
        hits = other.state.listings.hits
        assert hits >= 1
        variants = catalog.product["variants"]
        resp = await catalog.patch(f"/api/v1/products/{catalog.product['id']}", headers=GROWER, json={"variants": [
            {"id": variants[0]["id"], "label": "Củ giống", "retail_price": 56000, "wholesale_tiers": []},
            {"id": variants[1]["id"], "label": "Chậu 30 cm", "retail_price": 150000}]})
        assert resp.status_code == 200, resp.text
        # The notification is delivered after the commit, within a round trip: give it that.
        for _ in range(50):
            if other.state.listings.generation > 0 and price_of((await replica.get(LIST)).json()) == 56000:
                break
            await asyncio.sleep(0.01)
        assert price_of((await replica.get(LIST)).json()) == 56000
        # Stock taken through the first: the NOTIFY names the product; the replica drops what shows it.
        page = f"/api/v1/products/{catalog.product['id']}"
        await replica.get(page)
        await replica.get(page)
        tick = other.state.listings.tick
        await reserve(catalog, variants[0]["id"], 4)
        for _ in range(50):
            if other.state.listings.tick > tick:
                break
            await asyncio.sleep(0.01)
        assert (await replica.get(page)).json()["variants"][0]["stock"] == 96
        assert (await replica.get(LIST)).json()["items"][0]["variants"][0]["stock"] == 96


async def test_the_listing_is_written_as_the_models_would_write_it(catalog, tmp_path) -> None:
    """page_json writes the listing without pydantic models: byte for byte what Page[ProductPublic] gives,
    with photos, wholesale tiers, an archived variant and a product without photos."""
    catalog.app.state.settings.media_dir = str(tmp_path / "media")
    for colour in ((30, 160, 60), (200, 40, 40)):
        assert (await upload(catalog, catalog.product["id"], png_bytes(colour=colour), "p.png", "image/png")
                ).status_code == 201
    variants = catalog.product["variants"]
    resp = await catalog.patch(f"/api/v1/products/{catalog.product['id']}", headers=GROWER, json={"variants": [
        {"id": variants[0]["id"], "label": "Củ giống", "retail_price": 45000}]})  # the pot archived
    assert resp.status_code == 200, resp.text
    await add_product(catalog, GROWER, name="Sen Quan Âm")
    base = catalog.app.state.settings.public_base_url
    async with catalog.app.state.db.sessionmaker() as session:
        rows, next_cursor = await service.list_products(session, limit=1)
        pages = [(rows, next_cursor)]
        rows, _ = await service.list_products(session, limit=1, cursor=next_cursor)
        pages.append((rows, None))
    for rows, cursor in pages:
        models = Page[ProductPublic](items=[service.to_public(p, base) for p in rows], next_cursor=cursor)
        assert page_body(rows, cursor, base) == orjson.dumps(models.model_dump(mode="json"))
    listed = (await catalog.get("/api/v1/products")).json()["items"]
    assert [len(p["photos"]) for p in listed] == [0, 2] and [len(p["variants"]) for p in listed] == [2, 1]


@pytest.mark.parametrize("statement,wrote", [
    ("SELECT products.id FROM products", False), ("  select 1", False), ("PRAGMA foreign_keys=ON", False),
    ("BEGIN IMMEDIATE", False), ("SAVEPOINT sa_1", False), ("RELEASE SAVEPOINT sa_1", False),
    ("UPDATE variants SET stock = 1", True), ("INSERT INTO products VALUES (1)", True),
    ("DELETE FROM photos", True), ("WITH x AS (UPDATE variants SET stock = 0 RETURNING id) SELECT 1", True),
    ("", True),
])
def test_what_counts_as_a_write(statement: str, wrote: bool) -> None:
    assert writes(statement) is wrote

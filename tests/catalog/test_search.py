"""Search and browse: accents and case ignored, prefix, AND, filters, sorts with keyset pages that
never skip or repeat, hostile queries, the indexes really used, ETag and 304."""

from __future__ import annotations

import copy
import uuid

import pytest
from sqlalchemy import event, text

from services.catalog import search
from services.catalog.search import Query, document
from tests.apps import make_app
from tests.catalog.helpers import PRODUCT, open_shop
from tests.conftest import asgi_client
from tests.support.auth import auth

CAN_THO, DONG_THAP, HA_NOI = "92", "82", "01"
GROWER_A, GROWER_B, GROWER_C = auth("grower-a"), auth("grower-b"), auth("grower-c")


def product(name: str, description: str = "", category: str = "water_lily", prices: tuple[int, ...] = (45000,),
            stock: int = 10, status: str = "active") -> dict:
    body = copy.deepcopy(PRODUCT)
    body.update(name=name, description=description, category=category, status=status)
    body["variants"] = [{"label": f"Loại {i + 1}", "retail_price": p, "stock": stock} for i, p in enumerate(prices)]
    return body


async def add(client, headers, body: dict) -> int:
    resp = await client.post("/api/v1/products", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls)
    async with asgi_client(app) as client:
        client.app = app
        client.service = {"X-Service-Token": app.state.settings.service_token.get_secret_value()}
        client.shops = {
            "a": (await open_shop(client, GROWER_A))["id"],  # "Vườn Sen Bà Tư", Cần Thơ
            "b": (await open_shop(client, GROWER_B, name="Nhà vườn Cô Ba", description="Sen súng miền Tây",
                                  province_code=DONG_THAP, ward_code="28261"))["id"],
            "c": (await open_shop(client, GROWER_C, name="Vườn Thủ Đô", description="Cây thủy sinh",
                                  province_code=HA_NOI, ward_code="00070"))["id"],
        }
        ids = {}
        ids["thai_do"] = await add(client, GROWER_A, product("Súng Thái đỏ", "Hoa đỏ thắm, nở ngày",
                                                             prices=(45000, 150000)))
        ids["my_vang"] = await add(client, GROWER_A, product("Hoa súng Mỹ vàng", "Vàng chanh, lá đốm",
                                                             prices=(55000,)))
        ids["sen_nhat"] = await add(client, GROWER_A, product("Sen Nhật mini", "Sen bát trồng chậu", "lotus",
                                                              prices=(90000,)))
        ids["lai"] = await add(client, GROWER_B, product("Súng lai", "Cây con từ hạt", "seedling", prices=(80000,),
                                                         stock=0))
        ids["beo"] = await add(client, GROWER_B, product("Bèo Nhật", "Lọc nước hồ cá", "aquatic", prices=(25000,)))
        ids["dam_sen"] = await add(client, GROWER_C, product("Sen trắng Đầm Sen", "Giống sen trắng từ Đầm Sen",
                                                             "lotus", prices=(120000,)))
        ids["draft"] = await add(client, GROWER_A, product("Súng nháp", "Hoa súng chưa bán", status="draft"))
        client.ids = ids
        yield client


async def found(client, **params) -> list[int]:
    resp = await client.get("/api/v1/products", params={"limit": 100, **params})
    assert resp.status_code == 200, resp.text
    return [p["id"] for p in resp.json()["items"]]


# ── folding ──────────────────────────────────────────────────────────────────────────────────────


def test_documents_and_queries_fold_the_same_way() -> None:
    assert document("HOA SÚNG Đỏ (Thái)!", None, "Đồng Tháp") == " hoa sung do thai dong thap "
    assert Query.parse("  Hoa   SÚNG  ").terms == ("hoa", "sung")
    assert Query.parse('"*" NEAR( \x00') is not None and Query.parse('"*" NEAR( \x00').terms == ("near",)
    assert Query.parse('"*( ') is None
    assert Query.parse("hoa su").fts5() == '"hoa" "su"*'
    assert Query.parse("hoa su").like_patterns() == ["% hoa %", "% su%"]


async def test_accents_and_case_do_not_matter(catalog) -> None:
    ids = catalog.ids
    results = [set(await found(catalog, q=q)) for q in ("hoa sung", "HOA SÚNG", "hoa súng", "Hoa Sung", "HOA SUNG")]
    assert results[0] == {ids["thai_do"], ids["my_vang"]}  # "Hoa đỏ" + "Súng", and "Hoa súng"; never the draft
    assert all(r == results[0] for r in results)
    assert set(await found(catalog, q="đầm sen")) == set(await found(catalog, q="dam sen")) == {ids["dam_sen"]}
    assert set(await found(catalog, q="ĐẦM SEN")) == {ids["dam_sen"]}


async def test_the_shops_name_and_province_find_its_varieties(catalog) -> None:
    ids = catalog.ids
    assert set(await found(catalog, q="dong thap")) == {ids["lai"], ids["beo"]}  # shop B is in Đồng Tháp
    assert set(await found(catalog, q="Đồng Tháp")) == {ids["lai"], ids["beo"]}
    assert set(await found(catalog, q="co ba sung")) == {ids["lai"]}  # shop name + product name, AND
    assert set(await found(catalog, q="vườn sen bà tư")) == {ids["thai_do"], ids["my_vang"], ids["sen_nhat"]}


async def test_a_shop_that_changes_name_or_province_is_found_by_the_new_ones(catalog) -> None:
    shop_b = catalog.shops["b"]
    resp = await catalog.patch(f"/api/v1/shops/{shop_b}", headers=GROWER_B,
                               json={"name": "Vườn Hạnh Phúc", "province_code": CAN_THO, "ward_code": "31135"})
    assert resp.status_code == 200, resp.text
    assert set(await found(catalog, q="hanh phuc")) == {catalog.ids["lai"], catalog.ids["beo"]}
    assert await found(catalog, q="dong thap") == []
    assert await found(catalog, q="co ba") == []
    assert catalog.ids["beo"] in await found(catalog, q="can tho")


async def test_prefix_and_all_words(catalog) -> None:
    ids = catalog.ids
    assert ids["my_vang"] in await found(catalog, q="hoa su")  # the last word is a prefix
    assert await found(catalog, q="sen nh") == [ids["sen_nhat"]]
    assert set(await found(catalog, q="nhat")) == {ids["sen_nhat"], ids["beo"]}
    assert await found(catalog, q="sen trang") == [ids["dam_sen"]]  # both words
    assert await found(catalog, q="sen beo") == []
    assert await found(catalog, q="ung") == []  # words are found from their start, not their middle


async def test_a_variety_that_changes_is_found_by_its_new_words(catalog) -> None:
    pid = catalog.ids["beo"]
    resp = await catalog.patch(f"/api/v1/products/{pid}", headers=GROWER_B, json={"name": "Lục bình tím"})
    assert resp.status_code == 200
    assert await found(catalog, q="luc binh") == [pid]
    assert await found(catalog, q="beo") == []
    assert (await catalog.delete(f"/api/v1/products/{pid}", headers=GROWER_B)).status_code == 204
    assert await found(catalog, q="luc binh") == []


# ── filters ──────────────────────────────────────────────────────────────────────────────────────


async def test_filters(catalog) -> None:
    ids, shops = catalog.ids, catalog.shops
    assert set(await found(catalog, shop_id=shops["b"])) == {ids["lai"], ids["beo"]}
    assert set(await found(catalog, province_code=HA_NOI)) == {ids["dam_sen"]}
    assert set(await found(catalog, province_code=CAN_THO, q="sung")) == {ids["thai_do"], ids["my_vang"]}
    assert set(await found(catalog, category="lotus")) == {ids["sen_nhat"], ids["dam_sen"]}
    # A variety's price is its lowest retail price: Súng Thái đỏ is 45.000 ₫ (and 150.000 ₫ a pot).
    assert set(await found(catalog, min_price=45000, max_price=80000)) == {ids["thai_do"], ids["my_vang"], ids["lai"]}
    assert set(await found(catalog, min_price=100000)) == {ids["dam_sen"]}
    assert ids["lai"] not in await found(catalog, in_stock=True)
    assert await found(catalog, in_stock=False) == [ids["lai"]]
    assert await found(catalog, q="sung", in_stock=True, category="water_lily", shop_id=shops["a"],
                       max_price=50000) == [ids["thai_do"]]
    assert (await catalog.get("/api/v1/products", params={"min_price": 9, "max_price": 1})).status_code == 422
    for bad in ({"province_code": "x"}, {"min_price": -1}, {"sort": "cheapest"}, {"in_stock": "maybe"}):
        resp = await catalog.get("/api/v1/products", params=bad)
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"


async def test_the_wholesale_filter(catalog) -> None:
    ids = catalog.ids
    assert await found(catalog, wholesale=True) == []
    beo = (await catalog.get(f"/api/v1/products/{ids['beo']}")).json()["variants"][0]
    tiered = {k: beo[k] for k in ("id", "label", "retail_price", "stock", "min_order_quantity")}
    resp = await catalog.patch(f"/api/v1/products/{ids['beo']}", headers=GROWER_B, json={"variants": [
        tiered | {"wholesale_tiers": [{"min_quantity": 50, "unit_price": 18000}]}]})
    assert resp.status_code == 200, resp.text
    assert await found(catalog, wholesale=True) == [ids["beo"]]
    assert await found(catalog, q="beo", wholesale=True) == [ids["beo"]]  # with search too
    untiered = await found(catalog, wholesale=False)
    assert ids["beo"] not in untiered and ids["lai"] in untiered
    resp = await catalog.get("/api/v1/products", params={"wholesale": "maybe"})
    assert resp.status_code == 422


async def test_listing_price_and_stock_follow_variants_and_reservations(catalog) -> None:
    pid = catalog.ids["thai_do"]
    shown = (await catalog.get(f"/api/v1/products/{pid}")).json()
    assert (shown["min_price"], shown["in_stock"]) == (45000, True)
    # Dropping the cheap variant (it is archived) raises the price.
    pot = shown["variants"][1]
    resp = await catalog.patch(f"/api/v1/products/{pid}", headers=GROWER_A, json={"variants": [
        {k: pot[k] for k in ("id", "label", "retail_price", "wholesale_tiers", "min_order_quantity")} | {"stock": 2}]})
    assert resp.status_code == 200 and resp.json()["min_price"] == 150000
    assert pid not in await found(catalog, max_price=100000)
    # A reservation that takes the last stock makes it sold out; releasing it brings it back.
    body = {"id": uuid.uuid4().hex, "lines": [{"variant_id": pot["id"], "quantity": 2}]}
    resp = await catalog.post("/internal/reservations", json=body, headers=catalog.service)
    assert resp.status_code == 201, resp.text
    assert pid in await found(catalog, in_stock=False)
    assert (await catalog.get(f"/api/v1/products/{pid}")).json()["in_stock"] is False
    resp = await catalog.post(f"/internal/reservations/{body['id']}/release", headers=catalog.service)
    assert resp.status_code == 200, resp.text
    assert pid in await found(catalog, in_stock=True)


# ── sorts and pages ──────────────────────────────────────────────────────────────────────────────


@pytest.fixture
async def many(catalog):
    """23 more water lilies with repeated prices, so that pages cut through ties."""
    made = []
    for i in range(23):
        made.append(await add(catalog, GROWER_C, product(f"Súng lô {i}", "Hoa súng" + " súng" * (i % 4),
                                                         prices=(10000 + 5000 * (i % 5),))))
    catalog.many = made
    return catalog


async def walk(client, limit: int = 4, **params) -> list[dict]:
    items, cursor, pages = [], None, 0
    while True:
        resp = await client.get("/api/v1/products", params={**params, "limit": limit,
                                                            **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["items"]
        pages += 1
        assert pages < 50
        cursor = body["next_cursor"]
        if cursor is None:
            assert len(body["items"]) <= limit
            return items
        assert len(body["items"]) == limit


@pytest.mark.parametrize("sort", ["relevance", "newest", "price_asc", "price_desc", None])
@pytest.mark.parametrize("q", ["sung", None])
async def test_every_sort_pages_without_gaps_or_repeats(many, sort, q) -> None:
    params = {k: v for k, v in {"sort": sort, "q": q}.items() if v is not None}
    whole = (await many.get("/api/v1/products", params={**params, "limit": 100})).json()["items"]
    walked = await walk(many, **params)
    assert [p["id"] for p in walked] == [p["id"] for p in whole]
    ids = [p["id"] for p in walked]
    assert len(ids) == len(set(ids))
    expected = set(many.many) | {many.ids[k] for k in ("thai_do", "my_vang", "lai")} if q else \
        set(many.many) | {v for k, v in many.ids.items() if k != "draft"}
    assert set(ids) == expected
    prices = [(p["min_price"], p["id"]) for p in walked]
    if sort == "price_asc":
        assert prices == sorted(prices)
    elif sort == "price_desc":
        assert prices == sorted(prices, reverse=True)
    elif sort == "newest" or (sort is None and q is None) or (sort == "relevance" and q is None):
        assert ids == sorted(ids, reverse=True)


async def test_relevance_puts_name_matches_first(many) -> None:
    ids = await found(many, q="hoa")  # in the name of one; in the description of many
    assert ids[0] == many.ids["my_vang"] and len(ids) > 20
    assert (await found(many, q="sung lo 7"))[0] == many.many[7]


async def test_a_cursor_only_works_for_its_own_sort(many) -> None:
    page = (await many.get("/api/v1/products", params={"sort": "price_asc", "limit": 2})).json()
    for params in ({"sort": "newest"}, {"sort": "relevance", "q": "sung"}, {"sort": "price_desc"}):
        resp = await many.get("/api/v1/products", params={**params, "cursor": page["next_cursor"]})
        assert resp.status_code == 422, (params, resp.text)
    for cursor in ("garbage", "eyJ4IjoxfQ", "eyJzIjoibmV3ZXN0IiwiayI6dHJ1ZSwiaWQiOjF9"):
        resp = await many.get("/api/v1/products", params={"cursor": cursor})
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"


# ── hostile queries ──────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("q", ['"', "*", "NEAR(", "a OR", "\x00", 'sung"', "sung*", "-sen", "sen AND",
                               "sen NOT súng", "(sen", "sen)", "^sen", "sen:", "search_name:sen",
                               "'; DROP TABLE products; --",
                               "%", "_", "%sen%", "\\", "{sen}", "sen + súng", "NEAR(sen súng, 2)", "🌸 sen", "   ",
                               "x" * 200])
async def test_hostile_queries_never_fail(catalog, q) -> None:
    resp = await catalog.get("/api/v1/products", params={"q": q})
    assert resp.status_code == 200, resp.text
    resp = await catalog.get("/api/v1/shops", params={"q": q})
    assert resp.status_code == 200, resp.text


async def test_a_query_that_is_too_long_is_422(catalog) -> None:
    for path in ("/api/v1/products", "/api/v1/shops"):
        resp = await catalog.get(path, params={"q": "sen " * 2500})
        assert resp.status_code == 422 and resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["errors"][0]["field"] == "query.q"


async def test_owners_search_their_own_varieties_in_any_status(catalog) -> None:
    mine = await found_mine(catalog, q="hoa sung")
    assert set(mine) == {catalog.ids["thai_do"], catalog.ids["my_vang"], catalog.ids["draft"]}
    assert await found_mine(catalog, q="sung", status="draft") == [catalog.ids["draft"]]


async def found_mine(client, **params) -> list[int]:
    resp = await client.get("/api/v1/products", params={"mine": True, **params}, headers=GROWER_A)
    assert resp.status_code == 200, resp.text
    return [p["id"] for p in resp.json()["items"]]


# ── shops ────────────────────────────────────────────────────────────────────────────────────────


async def test_shop_search(catalog) -> None:
    shops = catalog.shops

    async def shop_ids(**params) -> list[int]:
        resp = await catalog.get("/api/v1/shops", params=params)
        assert resp.status_code == 200, resp.text
        return [s["id"] for s in resp.json()["items"]]

    assert set(await shop_ids(q="dong thap")) == {shops["a"], shops["b"]}  # B is there; A's description names it
    assert await shop_ids(q="ĐỒNG THÁP", province_code=DONG_THAP) == [shops["b"]]
    assert await shop_ids(q="ba tu") == [shops["a"]]
    assert await shop_ids(q="thuy sinh") == [shops["c"]]
    assert set(await shop_ids(q="vuon")) == {shops["a"], shops["b"], shops["c"]}  # "Nhà vườn", "Vườn …"
    page = (await catalog.get("/api/v1/shops", params={"q": "vuon", "limit": 2})).json()
    rest = (await catalog.get("/api/v1/shops", params={"q": "vuon", "limit": 2, "cursor": page["next_cursor"]})).json()
    assert len({s["id"] for s in page["items"] + rest["items"]}) == 3 and rest["next_cursor"] is None


# ── the indexes are used ─────────────────────────────────────────────────────────────────────────


async def captured_search(client, **params) -> tuple[str, object]:
    """The SQL the service runs for a search, and its parameters."""
    seen: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        if "search_text" in statement or "products_fts MATCH" in statement:
            seen.append((statement, parameters))

    engine = client.app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", grab)
    try:
        assert (await client.get("/api/v1/products", params=params)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", grab)
    # The statement the text index serves (on PostgreSQL: the one after the ordered window).
    return next(s for s in seen if s[0].lstrip().upper().startswith("SELECT") and "search_window" not in s[0])


async def test_the_search_index_is_used(catalog, backend, monkeypatch) -> None:
    db = catalog.app.state.db
    if backend == "postgresql":
        # On a handful of rows every plan is cheap: add some thousands of newer ones, so that the
        # statistics show the words to be rare and the status to be common, as in a real catalog.
        async with db.engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO products (shop_id, name, description, category, status, search_name, search_text, "
                "min_price, in_stock) SELECT :shop, 'Lô ' || g, '', 'water_lily', 'active', ' lo ' || g || ' ', "
                "' lo ' || g || ' vuon ', 1000, true FROM generate_series(1, 5000) AS g"),
                {"shop": catalog.shops["c"]})
            # New rows wait in the GIN index's pending list until a vacuum; merge them, as autovacuum would.
            for index in ("ix_products_search_text_trgm", "ix_products_search_name_trgm"):
                await conn.exec_driver_sql(f"SELECT gin_clean_pending_list('{index}')")
            await conn.exec_driver_sql("ANALYZE products")
    monkeypatch.setattr(search, "PG_WINDOW", 1)  # past one row, PostgreSQL asks the trigram index
    # Relevance reads the names first (their own index on PostgreSQL); newest reads the whole text.
    by_name = await captured_search(catalog, q="hoa sung", category="water_lily")
    by_text = await captured_search(catalog, q="hoa sung", category="water_lily", sort="newest")
    async with db.engine.connect() as conn:
        if backend == "sqlite":
            for statement, parameters in (by_name, by_text):
                plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)).all()
                details = " | ".join(str(row[-1]) for row in plan)
                assert "VIRTUAL TABLE INDEX" in details and "products_fts" in details, details
            triggers = {r[0] for r in (await conn.execute(text(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"))).all()}
            assert {f"{t}_fts_{s}" for t in ("products", "shops") for s in ("ai", "ad", "au")} <= triggers
        else:
            indexes = {r[0]: r[1] for r in (await conn.execute(text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('products', 'shops')"))).all()}
            for name in ("ix_products_search_text_trgm", "ix_products_search_name_trgm", "ix_shops_search_text_trgm"):
                assert "gin_trgm_ops" in indexes[name]
            await conn.exec_driver_sql("SET enable_seqscan = off")
            for (statement, parameters), index in ((by_name, "ix_products_search_name_trgm"),
                                                   (by_text, "ix_products_search_text_trgm")):
                plan = (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).all()
                details = "\n".join(r[0] for r in plan)
                assert index in details, details


# ── HTTP caching ─────────────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize("path", ["/api/v1/products?q=hoa+sung", "/api/v1/products", "/api/v1/shops",
                                  "/api/v1/shops?q=vuon", "product", "shop"])
async def test_public_reads_send_etags_and_answer_304(catalog, path) -> None:
    if path == "product":
        path = f"/api/v1/products/{catalog.ids['thai_do']}"
    elif path == "shop":
        path = f"/api/v1/shops/{catalog.shops['a']}"
    first = await catalog.get(path)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('W/"') and first.headers["cache-control"] == "public, max-age=60"
    assert "authorization" in first.headers["vary"].lower()
    again = await catalog.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert (await catalog.get(path, headers={"If-None-Match": f'"other", {etag}'})).status_code == 304
    assert (await catalog.get(path, headers={"If-None-Match": etag.removeprefix("W/")})).status_code == 304
    assert (await catalog.get(path, headers={"If-None-Match": '"stale"'})).status_code == 200
    # A change makes a new ETag.
    resp = await catalog.patch(f"/api/v1/shops/{catalog.shops['a']}", headers=GROWER_A,
                               json={"name": "Vườn Hoa Súng Bà Tư"})
    assert resp.status_code == 200
    resp = await catalog.patch(f"/api/v1/products/{catalog.ids['thai_do']}", headers=GROWER_A,
                               json={"description": "Đỏ thắm"})
    assert resp.status_code == 200
    changed = await catalog.get(path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


async def test_signed_in_reads_are_private(catalog) -> None:
    pid = catalog.ids["draft"]
    resp = await catalog.get(f"/api/v1/products/{pid}", headers=GROWER_A)
    assert resp.status_code == 200 and resp.headers["cache-control"] == "private, no-cache"
    again = await catalog.get(f"/api/v1/products/{pid}", headers={**GROWER_A, "If-None-Match": resp.headers["etag"]})
    assert again.status_code == 304
    mine = await catalog.get("/api/v1/products", params={"mine": True}, headers=GROWER_A)
    assert mine.headers["cache-control"] == "private, no-cache"
    anonymous = await catalog.get("/api/v1/products")
    assert anonymous.headers["etag"] != mine.headers["etag"]


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
async def test_many_matches_by_price_walk_the_price_index_with_the_same_result(many, sort, monkeypatch) -> None:
    """SQLite: past PROBE_CAP matches, price order comes from the price index, each row checked with
    LIKE on the folded text; the pages must be the same as through FTS5."""
    through_fts = [p["id"] for p in await walk(many, q="hoa su", sort=sort)]
    monkeypatch.setattr(search, "PROBE_CAP", 1)
    walked = [p["id"] for p in await walk(many, q="hoa su", sort=sort)]
    assert walked == through_fts and len(walked) > 20


@pytest.mark.parametrize("sort", ["relevance", "newest", "price_asc", "price_desc"])
async def test_a_small_window_gives_the_same_pages(many, sort, monkeypatch) -> None:
    """PostgreSQL reads PG_WINDOW rows in order before asking the trigram index for the rest: the
    pages must not depend on where that seam falls."""
    params = {"q": "hoa su", "sort": sort}
    whole = [p["id"] for p in await walk(many, **params)]
    monkeypatch.setattr(search, "PG_WINDOW", 3)
    assert [p["id"] for p in await walk(many, **params)] == whole
    assert [p["id"] for p in await walk(many, limit=7, **params)] == whole
    assert len(whole) > 20

"""/internal/reservations: all lines or none, never oversold, authoritative prices, idempotent,
released once, swept after their time-to-live; stock.low written with the stock change."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError

from services.catalog.outbox import OutboxEvent
from services.catalog.reservations.models import Reservation
from services.catalog.reservations.sweeper import sweep_once
from tests.apps import make_app
from tests.catalog.helpers import BANK, add_product, open_shop
from tests.conftest import asgi_client
from tests.support.auth import auth

GROWER = auth("grower-1")


@pytest.fixture
async def catalog(db_urls):
    app = make_app("catalog", db_urls, reservation_sweep_interval=0)
    async with asgi_client(app) as client:
        client.app = app
        client.service = {"X-Service-Token": app.state.settings.service_token.get_secret_value()}
        client.shop = await open_shop(client, GROWER, bank=BANK)
        client.product = await add_product(client, GROWER)
        yield client


def rid() -> str:
    return uuid.uuid4().hex


async def reserve(client, lines, reservation_id=None, **extra):
    body = {"id": reservation_id or rid(), "lines": lines, **extra}
    return await client.post("/internal/reservations", json=body, headers=client.service)


async def stock(client, variant_id: int) -> int:
    product = (await client.get(f"/api/v1/products/{client.product['id']}")).json()
    return next(v["stock"] for v in product["variants"] if v["id"] == variant_id)


async def test_prices_come_from_the_catalog_with_tiers_and_summed_lines(catalog) -> None:
    tuber, pot = (v["id"] for v in catalog.product["variants"])
    resp = await reserve(catalog, [{"variant_id": tuber, "quantity": 6}, {"variant_id": pot, "quantity": 2},
                                   {"variant_id": tuber, "quantity": 5}], payment_method="bank_transfer")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert [(ln["variant_id"], ln["quantity"], ln["unit_price"], ln["price_kind"]) for ln in body["lines"]] == [
        (tuber, 11, 38000, "wholesale"), (pot, 2, 150000, "retail")]
    assert body["lines"][0]["product_name"] == "Súng Thái đỏ" and body["lines"][0]["variant_label"] == "Củ giống"
    assert body["shop"]["bank_account"] == BANK["account_number"] and body["shop"]["min_order_value"] == 50000
    assert await stock(catalog, tuber) == 100 - 11 and await stock(catalog, pot) == 5 - 2
    top = await reserve(catalog, [{"variant_id": tuber, "quantity": 60}])
    assert top.json()["lines"][0]["unit_price"] == 32000


async def test_the_bank_account_travels_only_for_a_bank_transfer(catalog) -> None:
    """Cash on delivery (or no payment method named) needs no account: none is decrypted or sent."""
    tuber = catalog.product["variants"][0]["id"]
    for extra in ({"payment_method": "cod"}, {}):
        resp = await reserve(catalog, [{"variant_id": tuber, "quantity": 3}], **extra)
        assert resp.status_code == 201, resp.text
        shop = resp.json()["shop"]
        assert BANK["account_number"] not in resp.text
        assert (shop["bank_bin"], shop["bank_account"], shop["bank_holder"]) == (None, None, None)
    # A replay of the same reservation for a bank transfer gets the account; the COD one never did.
    reservation_id = rid()
    cod = await reserve(catalog, [{"variant_id": tuber, "quantity": 2}], reservation_id, payment_method="cod")
    bank = await reserve(catalog, [{"variant_id": tuber, "quantity": 2}], reservation_id,
                         payment_method="bank_transfer")
    assert cod.json()["shop"]["bank_account"] is None and bank.json()["shop"]["bank_account"] == BANK["account_number"]
    assert (await reserve(catalog, [{"variant_id": tuber, "quantity": 1}], payment_method="card")).status_code == 422


async def test_same_id_is_idempotent_other_lines_conflict(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    reservation_id = rid()
    first = await reserve(catalog, [{"variant_id": tuber, "quantity": 3}], reservation_id)
    again = await reserve(catalog, [{"variant_id": tuber, "quantity": 3}], reservation_id)
    assert again.status_code == 201 and again.json() == first.json()
    assert await stock(catalog, tuber) == 97
    other = await reserve(catalog, [{"variant_id": tuber, "quantity": 4}], reservation_id)
    assert other.status_code == 409 and other.json()["type"].endswith("/reservation-mismatch")


async def test_a_retry_is_replayed_after_its_stock_ran_out_or_its_product_was_withdrawn(catalog) -> None:
    """A retry is told apart by failing (id taken, stock gone, variant off sale): it still gets its reply."""
    pot = catalog.product["variants"][1]["id"]
    reservation_id = rid()
    first = await reserve(catalog, [{"variant_id": pot, "quantity": 5}], reservation_id)
    assert first.status_code == 201 and await stock(catalog, pot) == 0
    again = await reserve(catalog, [{"variant_id": pot, "quantity": 5}], reservation_id)
    assert again.status_code == 201 and again.json() == first.json()
    withdrawn = await catalog.patch(f"/api/v1/products/{catalog.product['id']}", json={"status": "draft"},
                                    headers=GROWER)
    assert withdrawn.status_code == 200, withdrawn.text
    late = await reserve(catalog, [{"variant_id": pot, "quantity": 5}], reservation_id)
    assert late.status_code == 201 and late.json() == first.json()
    own = (await catalog.get(f"/api/v1/products/{catalog.product['id']}", headers=GROWER)).json()
    assert [v["stock"] for v in own["variants"] if v["id"] == pot] == [0]
    assert (await reserve(catalog, [{"variant_id": pot, "quantity": 1}])).status_code == 422  # a new id is refused


async def test_all_or_nothing_when_one_line_is_short(catalog) -> None:
    tuber, pot = (v["id"] for v in catalog.product["variants"])
    resp = await reserve(catalog, [{"variant_id": tuber, "quantity": 10}, {"variant_id": pot, "quantity": 6}])
    assert resp.status_code == 409
    problem = resp.json()
    assert problem["type"].endswith("/out-of-stock")
    assert problem["errors"] == [{"field": "body.lines[1].variant_id", "message": "only 5 left",
                                  "type": "out_of_stock", "variant_id": pot, "available": 5}]
    assert await stock(catalog, tuber) == 100 and await stock(catalog, pot) == 5


async def test_unorderable_lines_are_422_and_touch_nothing(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    draft = await add_product(catalog, GROWER, status="draft")
    other_grower = auth("grower-2")
    await open_shop(catalog, other_grower, name="Vườn Hai")
    foreign = await add_product(catalog, other_grower)
    minimum = await add_product(catalog, GROWER, variants=[{"label": "Bó", "retail_price": 1000, "stock": 50,
                                                            "min_order_quantity": 5}])
    cases = [
        [{"variant_id": 999999, "quantity": 1}],
        [{"variant_id": draft["variants"][0]["id"], "quantity": 1}],
        [{"variant_id": tuber, "quantity": 1}, {"variant_id": foreign["variants"][0]["id"], "quantity": 1}],
        [{"variant_id": minimum["variants"][0]["id"], "quantity": 4}],
        [{"variant_id": tuber, "quantity": 0}],
        [{"variant_id": tuber, "quantity": -3}],
        [{"variant_id": tuber, "quantity": 10**9}],
    ]
    for lines in cases:
        resp = await reserve(catalog, lines)
        assert resp.status_code == 422, (lines, resp.text)
    wrong_shop = await reserve(catalog, [{"variant_id": tuber, "quantity": 1}], shop_id=catalog.shop["id"] + 1)
    assert wrong_shop.status_code == 422
    assert await stock(catalog, tuber) == 100
    assert (await catalog.get(f"/api/v1/products/{minimum['id']}")).json()["variants"][0]["stock"] == 50


async def test_commit_then_release_restores_once(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    reservation_id = (await reserve(catalog, [{"variant_id": tuber, "quantity": 7}])).json()["id"]
    path = f"/internal/reservations/{reservation_id}"
    assert (await catalog.post(f"{path}/commit", headers=catalog.service)).json()["status"] == "committed"
    assert (await catalog.post(f"{path}/commit", headers=catalog.service)).status_code == 200
    assert await stock(catalog, tuber) == 93
    releases = await asyncio.gather(*(catalog.post(f"{path}/release", headers=catalog.service) for _ in range(5)))
    assert sum(r.json()["restored"] for r in releases) == 1
    assert await stock(catalog, tuber) == 100
    assert (await catalog.post(f"{path}/commit", headers=catalog.service)).status_code == 409
    assert (await catalog.post("/internal/reservations/nosuchreservation/release",
                               headers=catalog.service)).status_code == 404


async def test_many_reservations_commit_in_one_call(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    held = [(await reserve(catalog, [{"variant_id": tuber, "quantity": 1}])).json()["id"] for _ in range(3)]
    released = (await reserve(catalog, [{"variant_id": tuber, "quantity": 5}])).json()["id"]
    await catalog.post(f"/internal/reservations/{released}/release", headers=catalog.service)
    await catalog.post(f"/internal/reservations/{held[0]}/commit", headers=catalog.service)
    body = {"ids": [*held, released, "nosuchreservation"]}
    for _ in range(2):  # the same call again changes nothing
        resp = await catalog.post("/internal/reservations/commit", json=body, headers=catalog.service)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"statuses": {**dict.fromkeys(held, "committed"), released: "released"},
                               "unknown": ["nosuchreservation"]}
    assert await stock(catalog, tuber) == 97
    for bad in ({"ids": []}, {"ids": ["short"]}, {"ids": ["x" * 8] * 501}, {"ids": "abcdefgh"}):
        resp = await catalog.post("/internal/reservations/commit", json=bad, headers=catalog.service)
        assert resp.status_code == 422, bad
    assert (await catalog.post("/internal/reservations/commit", json=body)).status_code in (401, 403)


async def test_uncommitted_reservations_are_swept_after_their_ttl(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    stale = (await reserve(catalog, [{"variant_id": tuber, "quantity": 4}])).json()["id"]
    kept = (await reserve(catalog, [{"variant_id": tuber, "quantity": 2}])).json()["id"]
    fresh = (await reserve(catalog, [{"variant_id": tuber, "quantity": 1}])).json()["id"]
    await catalog.post(f"/internal/reservations/{kept}/commit", headers=catalog.service)
    async with catalog.app.state.db.sessionmaker() as session:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await session.execute(update(Reservation).where(Reservation.id.in_([stale, kept])).values(expires_at=past))
        await session.commit()
    assert await sweep_once(catalog.app.state.db) == 1
    assert await sweep_once(catalog.app.state.db) == 0
    assert await stock(catalog, tuber) == 100 - 2 - 1
    async with catalog.app.state.db.sessionmaker() as session:
        statuses = {r.id: r.status for r in (await session.scalars(select(Reservation))).all()}
    assert statuses == {stale: "released", kept: "committed", fresh: "held"}


async def test_concurrent_buyers_never_oversell(catalog) -> None:
    pot = catalog.product["variants"][1]["id"]  # 5 in stock
    replies = await asyncio.gather(*(reserve(catalog, [{"variant_id": pot, "quantity": 1}]) for _ in range(25)))
    codes = sorted(r.status_code for r in replies)
    assert codes.count(201) == 5 and codes.count(409) == 20, codes
    assert await stock(catalog, pot) == 0


async def test_stock_low_written_when_crossing_the_threshold(catalog) -> None:
    product = await add_product(catalog, GROWER, variants=[{"label": "Củ", "retail_price": 20000, "stock": 12,
                                                            "low_stock_threshold": 10}])
    variant = product["variants"][0]["id"]
    await reserve(catalog, [{"variant_id": variant, "quantity": 2}])  # 12 → 10: not below
    await reserve(catalog, [{"variant_id": variant, "quantity": 3}])  # 10 → 7: crosses
    await reserve(catalog, [{"variant_id": variant, "quantity": 1}])  # 7 → 6: already below
    async with catalog.app.state.db.sessionmaker() as session:
        events = (await session.scalars(select(OutboxEvent))).all()
    assert [(e.type, e.data["variant_id"], e.data["stock"], e.data["threshold"]) for e in events] == [
        ("stock.low", variant, 7, 10)]
    assert events[0].data["owner_id"] == "grower-1" and events[0].published_at is None


async def test_internal_routes_need_the_service_credential(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    body = {"id": rid(), "lines": [{"variant_id": tuber, "quantity": 1}]}
    assert (await catalog.post("/internal/reservations", json=body)).status_code == 401
    assert (await catalog.post("/internal/reservations", json=body, headers=GROWER)).status_code == 401


async def test_the_database_refuses_negative_stock(catalog) -> None:
    tuber = catalog.product["variants"][0]["id"]
    async with catalog.app.state.db.sessionmaker() as session:
        with pytest.raises(IntegrityError):
            await session.execute(text("UPDATE variants SET stock = -1 WHERE id = :id"), {"id": tuber})
            await session.commit()


async def test_on_postgresql_a_reservation_takes_its_stock_then_writes_the_rest_in_one_statement(
        catalog, backend) -> None:
    """On PostgreSQL the common case is an UPDATE per variant (checking what a line needs and
    returning what the reply needs) and one INSERT of the reservation, its lines and the listings'
    NOTIFY: two round trips besides BEGIN and COMMIT, compiled once per shape. Other catalog
    replicas hear of it once, with its products named (the stock only changed)."""
    if backend != "postgresql":
        pytest.skip("the one-statement reservation is PostgreSQL's")
    from contextvars import ContextVar

    from sqlalchemy import event
    from sqlalchemy.engine.default import CACHE_HIT

    from services.catalog.listings import CHANNEL

    mine: ContextVar[bool] = ContextVar("mine", default=False)
    seen: list[tuple[str, bool]] = []

    def note(_conn, _cursor, statement: str, _parameters, context, _many) -> None:
        if mine.get():
            seen.append((" ".join(statement.split()[:3]), context.cache_hit == CACHE_HIT))

    heard: list[str] = []
    listener = await catalog.app.state.db.engine.connect()
    driver = (await listener.get_raw_connection()).driver_connection
    await driver.add_listener(CHANNEL, lambda *args: heard.append(args[-1]))
    engine = catalog.app.state.db.engine.sync_engine
    tuber, pot = (v["id"] for v in catalog.product["variants"])
    event.listen(engine, "before_cursor_execute", note)
    mine.set(True)
    try:
        replies = [await reserve(catalog, [{"variant_id": pot, "quantity": 1}, {"variant_id": tuber, "quantity": 2}])
                   for _ in range(2)]
    finally:
        mine.set(False)
        event.remove(engine, "before_cursor_execute", note)
    try:
        assert [r.status_code for r in replies] == [201, 201], replies[0].text
        assert [s for s, _ in seen] == ["UPDATE variants SET", "UPDATE variants SET", "WITH write_lines AS"] * 2
        assert [hit for _, hit in seen[3:]] == [True, True, True]
        assert [(ln["variant_id"], ln["quantity"], ln["unit_price"]) for ln in replies[1].json()["lines"]] == [
            (tuber, 2, 45000), (pot, 1, 150000)]
        assert await stock(catalog, tuber) == 96 and await stock(catalog, pot) == 3
        async with catalog.app.state.db.sessionmaker() as session:
            stored = await session.get(Reservation, replies[1].json()["id"])
            lines = (await session.execute(text(
                "SELECT variant_id, quantity FROM reservation_lines WHERE reservation_id = :id ORDER BY variant_id"),
                {"id": stored.id})).all()
        assert stored.status == "held" and [tuple(ln) for ln in lines] == [(tuber, 2), (pot, 1)]
        for _ in range(50):
            if len(heard) >= 2:
                break
            await asyncio.sleep(0.01)
        token = catalog.app.state.listings.token
        assert heard == [f"{token} {catalog.product['id']}"] * 2
    finally:
        await listener.close()


async def test_two_reservations_selling_out_a_products_last_two_variants_at_once_leave_it_out_of_stock(
        catalog, backend) -> None:
    """Each of two concurrent transactions takes the last unit of one of a product's two variants:
    whichever commits second recomputes the product's in_stock after the first's commit (the product
    row is locked first), so the product ends out of stock. (SQLite runs its writers one at a time.)"""
    if backend != "postgresql":
        pytest.skip("PostgreSQL runs the two transactions at once")
    from common.reservations import ReservationRequest
    from services.catalog.products.models import Product
    from services.catalog.reservations import service

    product = await add_product(catalog, GROWER, variants=[{"label": "Củ", "retail_price": 20000, "stock": 1},
                                                          {"label": "Chậu", "retail_price": 90000, "stock": 1}])
    first, second = (v["id"] for v in product["variants"])
    app = catalog.app

    async def take(session, variant_id: int) -> None:
        await service.reserve(session, ReservationRequest(id=rid(), lines=[{"variant_id": variant_id, "quantity": 1}]),
                              ttl_seconds=600, cipher=app.state.cipher, listings=app.state.listings)

    async with app.state.db.sessionmaker() as one, app.state.db.sessionmaker() as two:
        await take(one, first)  # holds the product's row until it commits
        other = asyncio.create_task(take(two, second))
        await asyncio.sleep(0.3)
        await one.commit()
        await asyncio.wait_for(other, 5)
        await two.commit()
    async with app.state.db.sessionmaker() as session:
        assert (await session.get(Product, product["id"])).in_stock is False


async def test_a_retried_reservation_overlapping_its_release_is_refused_at_once_not_deadlocked(
        catalog, backend) -> None:
    """A retry of a reservation takes its stock first, then writes its row, whose id is taken. If its
    release runs in between, the release waits for the variant's row (it locks the variants before
    the reservation), so the retry's insert is refused at once and the release then restores the
    stock. Before, the release held the reservation's row and waited on the variant's, the retry held
    the variant's and waited on the reservation's key, and PostgreSQL failed one of them."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL runs the two transactions at once (SQLite runs its writers one at a time)")
    from services.catalog.reservations import service

    tuber = catalog.product["variants"][0]["id"]
    reservation_id = (await reserve(catalog, [{"variant_id": tuber, "quantity": 7}])).json()["id"]
    assert await stock(catalog, tuber) == 93
    sessions = catalog.app.state.db.sessionmaker
    async with sessions() as retry, sessions() as releasing:
        # The retry's first statement: the stock taken, the variant's row locked until it ends.
        await retry.execute(text("UPDATE variants SET stock = stock - 7 WHERE id = :id"), {"id": tuber})
        released = asyncio.create_task(service.release(releasing, reservation_id))
        await asyncio.sleep(0.3)
        assert not released.done()
        # Its second: the reservation's row. Before, this waited on the release, which waited on it.
        with pytest.raises(IntegrityError):
            await asyncio.wait_for(retry.execute(text(
                "INSERT INTO reservations (id, shop_id, status, created_at, expires_at) "
                "VALUES (:id, :shop, 'held', now(), now() + interval '10 minutes')"),
                {"id": reservation_id, "shop": catalog.shop["id"]}), 5)
        await retry.rollback()
        reservation, restored = await asyncio.wait_for(released, 5)
        await releasing.commit()
    assert restored and reservation.status == "released"
    assert await stock(catalog, tuber) == 100

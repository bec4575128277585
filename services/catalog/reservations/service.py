"""Reserving stock for orders, in one transaction per reservation, never overselling.

Stock falls by a conditional update (``… SET stock = stock - :q WHERE id = :id AND stock >= :q``,
with ``CHECK (stock >= 0)`` behind it), one variant at a time in id order so that two reservations
cannot deadlock. Prices come from here, never from the client: the highest wholesale tier the
quantity reaches, else retail. Every transition is a conditional update on the status, so retries,
races with the sweeper and repeated releases restore stock exactly once.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import defaultdict

from pydantic_core import to_jsonable_python
from sqlalchemy import Insert, Row, bindparam, false, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from common.crypto import FieldCipher
from common.db import row_params, rows_selected
from common.errors import Conflict, NotFound, UnprocessableEntity
from common.events import Envelope, StockLow
from common.reservations import ReservationRequest
from services.catalog.listings import LATER, ListingCache, stock_of
from services.catalog.outbox import outbox_row
from services.catalog.products.models import Product, ProductStatus, Variant
from services.catalog.products.service import refresh_listing
from services.catalog.reservations.models import Reservation, ReservationLine, ReservationStatus
from services.catalog.shops.models import Shop, utcnow

log = logging.getLogger("catalog.reservations")


class OutOfStock(Conflict):
    slug, title = "out-of-stock", "Not enough stock"


class ReservationMismatch(Conflict):
    slug, title = "reservation-mismatch", "This reservation id was used for other lines"


class ReservationClosed(Conflict):
    slug, title = "reservation-closed", "The reservation was already released"


def unit_price(variant: Variant | Row, quantity: int) -> tuple[int, str]:
    """The highest wholesale tier ``quantity`` reaches, else the retail price."""
    reached = [t for t in variant.wholesale_tiers if quantity >= t["min_quantity"]]
    if reached:
        best = max(reached, key=lambda t: t["min_quantity"])
        return best["unit_price"], "wholesale"
    return variant.retail_price, "retail"


def _summed(request: ReservationRequest) -> dict[int, int]:
    totals: dict[int, int] = defaultdict(int)
    for line in request.lines:
        totals[line.variant_id] += line.quantity
    return dict(sorted(totals.items()))


def _line_error(request: ReservationRequest, variant_id: int, message: str, kind: str) -> dict:
    index = next(i for i, line in enumerate(request.lines) if line.variant_id == variant_id)
    return {"field": f"body.lines[{index}].variant_id" if kind != "min_quantity" else f"body.lines[{index}].quantity",
            "message": message, "type": kind, "variant_id": variant_id}


async def reserve(session: AsyncSession, request: ReservationRequest, *, ttl_seconds: int,
                  cipher: FieldCipher, listings: ListingCache) -> dict:
    """Hold stock for every line, or for none. Same id and lines again → the same reply: a
    ``ReservationOut`` as JSON values.

    A new id is the common case, so it is reserved straight away rather than looked up first (a
    query less per order). A retry shows itself by failing: its id is taken (the primary key), or its
    stock or variant is gone since. Then the transaction is rolled back, and an earlier reservation
    with that id, if there is one, is replayed instead.

    On PostgreSQL the stock is taken first (:func:`_take_first`: the common case in four round trips,
    ``BEGIN`` and ``COMMIT`` included); a line that cannot be taken so rolls that back, and the
    reservation is made again checking first (:func:`_reserve_new`), which says why."""
    try:
        if session.bind.dialect.name == "postgresql":
            reply = await _take_first(session, request, ttl_seconds, cipher, listings)
            if reply is not None:
                return reply
            await session.rollback()
        return await _reserve_new(session, request, ttl_seconds, cipher)
    except (IntegrityError, UnprocessableEntity, Conflict):
        await session.rollback()
        existing = await session.get(Reservation, request.id)
        if existing is None:
            raise
        return await _replay(session, existing, request, cipher)


async def _reserve_new(session: AsyncSession, request: ReservationRequest, ttl_seconds: int,
                       cipher: FieldCipher) -> dict:
    totals = _summed(request)
    found = {row.id: row for row in (await session.execute(_VARIANTS, {"ids": list(totals)})).all()}
    errors = []
    for variant_id, quantity in totals.items():
        row = found.get(variant_id)
        if row is None or row.archived or row.product_status != ProductStatus.active:
            errors.append(_line_error(request, variant_id, "no such variant on sale", "unknown_variant"))
        elif quantity < row.min_order_quantity:
            errors.append(_line_error(request, variant_id, f"the minimum order is {row.min_order_quantity}",
                                      "min_quantity"))
    shop_ids = {row.shop_id for row in found.values()}
    if not errors and (len(shop_ids) != 1 or (request.shop_id is not None and shop_ids != {request.shop_id})):
        errors.append({"field": "body.lines", "message": "all lines must be of one shop", "type": "mixed_shops"})
    if errors:
        raise UnprocessableEntity("Some lines cannot be ordered", errors=errors)

    shortages = []
    low: list[tuple[Row, int]] = []
    sold_out: set[int] = set()  # products a variant of which has just reached zero
    for variant_id, quantity in totals.items():
        row = found[variant_id]
        # Only this product's stock: the kept replies that do not show it stay (services/catalog/listings.py).
        taken = await session.execute(_TAKE_STOCK, {"variant_id": variant_id, "quantity": quantity},
                                      execution_options=stock_of([row.product_id]))
        left = taken.scalar_one_or_none()
        if left is None:
            shortages.append(variant_id)
            continue
        _note_taken(row, left, quantity, sold_out, low)
    if shortages:
        await session.rollback()
        available = {v: (await session.scalar(select(Variant.stock).where(Variant.id == v))) for v in shortages}
        raise OutOfStock("Not enough stock for some lines", errors=[
            {**_line_error(request, v, f"only {available[v]} left", "out_of_stock"), "available": available[v]}
            for v in shortages])

    # A product's "from" price does not depend on stock, and while every variant reserved keeps some
    # stock its product stays in stock: only a variant reaching zero can change the listing.
    await refresh_listing(session, sold_out)
    reservation, lines = _rows(request, shop_ids.pop(), totals, found, ttl_seconds)
    # Plain INSERTs and rows, not the unit of work and ORM instances: on the busiest path their
    # bookkeeping cost more than the statements.
    await session.execute(_INSERT_RESERVATION, reservation)
    await session.execute(_INSERT_LINE, lines)
    await _low_stock(session, low)
    return _reply(reservation, lines, found, cipher, request)


async def _take_first(session: AsyncSession, request: ReservationRequest, ttl_seconds: int, cipher: FieldCipher,
                      listings: ListingCache) -> dict | None:
    """PostgreSQL: each variant's stock taken by an ``UPDATE … FROM`` that checks all a line needs (on
    sale, the minimum order, enough stock) and returns what the reply needs of the variant, its
    product and its shop; then the reservation, its lines and the listings' ``NOTIFY`` in one
    ``INSERT``. ``None`` when a line is refused (or the lines are of another shop than asked): the
    caller rolls back and checks first, to say why."""
    totals = _summed(request)
    found: dict[int, Row] = {}
    low: list[tuple[Row, int]] = []
    sold_out: set[int] = set()
    info = (await session.connection()).info
    for variant_id, quantity in totals.items():
        row = (await session.execute(_TAKE_CHECKED, {"variant_id": variant_id, "quantity": quantity},
                                     execution_options=stock_of(LATER))).one_or_none()
        if row is None:
            return None
        listings.took_stock(info, (row.product_id,))
        found[variant_id] = row
        _note_taken(row, row.stock, quantity, sold_out, low)
    shop_ids = {row.shop_id for row in found.values()}
    if len(shop_ids) != 1 or (request.shop_id is not None and shop_ids != {request.shop_id}):
        return None
    await refresh_listing(session, sold_out)
    reservation, lines = _rows(request, shop_ids.pop(), totals, found, ttl_seconds)
    params = reservation | row_params("l", lines)
    notice = listings.notify_along(info)
    if notice is not None:
        params |= {"channel": notice[0], "payload": notice[1]}
    await session.execute(_holding(tuple(lines[0]), len(lines), notice is not None), params)
    await _low_stock(session, low)
    return _reply(reservation, lines, found, cipher, request)


def _note_taken(row: Row, left: int, quantity: int, sold_out: set[int], low: list[tuple[Row, int]]) -> None:
    """``quantity`` taken from the variant ``row``, ``left`` remaining: its product to refresh when
    it reached zero, a ``stock.low`` event when it just fell under its threshold."""
    if left == 0:
        sold_out.add(row.product_id)
    threshold = row.low_stock_threshold
    if threshold and left < threshold <= left + quantity:
        low.append((row, left))


def _rows(request: ReservationRequest, shop_id: int, totals: dict[int, int], found: dict[int, Row],
          ttl_seconds: int) -> tuple[dict, list[dict]]:
    """The reservation's row and its lines' rows, priced."""
    now = utcnow()
    reservation = {"id": request.id, "shop_id": shop_id, "status": ReservationStatus.held.value,
                   "created_at": now, "expires_at": now + dt.timedelta(seconds=request.ttl_seconds or ttl_seconds)}
    lines = []
    for variant_id, quantity in totals.items():
        price, kind = unit_price(found[variant_id], quantity)
        lines.append({"reservation_id": request.id, "variant_id": variant_id, "quantity": quantity,
                      "unit_price": price, "price_kind": kind})
    return reservation, lines


async def _low_stock(session: AsyncSession, low: list[tuple[Row, int]]) -> None:
    """A ``stock.low`` event in the outbox for each variant whose stock has just fallen under its threshold."""
    for row, left in low:
        session.add(outbox_row(_stock_low(row, left)))
    if low:
        await session.flush()


# The statements of every reservation, built once.
_variants = Variant.__table__.c
_products = Product.__table__.c
_shops = Shop.__table__.c
_TAKE_STOCK = (update(Variant.__table__)
               .where(_variants.id == bindparam("variant_id"), _variants.stock >= bindparam("quantity"))
               .values(stock=_variants.stock - bindparam("quantity")).returning(_variants.stock))
_INSERT_RESERVATION = insert(Reservation.__table__)
_INSERT_LINE = insert(ReservationLine.__table__)
# The variants with what a reservation needs of their products and shops, in one query: columns, not
# ORM instances (a product's description and search text, and the instances' bookkeeping, are not needed).
_VARIANTS = (
    select(_variants.id, _variants.product_id, _variants.label, _variants.retail_price, _variants.wholesale_tiers,
           _variants.min_order_quantity, _variants.low_stock_threshold, _variants.weight_grams,
           _variants.archived, _products.status.label("product_status"), _products.name.label("product_name"),
           _products.shop_id, _shops.owner_id.label("shop_owner_id"), _shops.name.label("shop_name"),
           _shops.slug.label("shop_slug"), _shops.phone.label("shop_phone"), _shops.delivery.label("shop_delivery"),
           _shops.min_order_value.label("shop_min_order_value"), _shops.bank_bin.label("shop_bank_bin"),
           _shops.bank_account_encrypted.label("shop_bank_account_encrypted"),
           _shops.bank_holder.label("shop_bank_holder"))
    .join_from(Variant.__table__, Product.__table__, _products.id == _variants.product_id)
    .join(Shop.__table__, _shops.id == _products.shop_id)
    .where(_variants.id.in_(bindparam("ids", expanding=True))))


# What a reservation needs of a variant, its product and its shop, taken along with its stock (the
# variant's stock afterwards: ``stock``): the check-first path's conditions, in the update's WHERE.
_TAKE_CHECKED = (
    update(Variant.__table__)
    .where(_variants.id == bindparam("variant_id"), _variants.stock >= bindparam("quantity"),
           _variants.min_order_quantity <= bindparam("quantity"), _variants.archived == false(),
           _products.id == _variants.product_id, _products.status == ProductStatus.active.value,
           _shops.id == _products.shop_id)
    .values(stock=_variants.stock - bindparam("quantity"))
    .returning(*(column for column in _VARIANTS.selected_columns
                 if column.name not in ("archived", "product_status")), _variants.stock))
_RESERVATION_COLUMNS = ("id", "shop_id", "status", "created_at", "expires_at")


@functools.cache
def _holding(line_columns: tuple[str, ...], count: int, notify: bool) -> Insert:
    """``INSERT INTO reservations … SELECT``, with its lines' INSERT as a CTE (run in the statement's
    snapshot; their reference to the reservation is checked at its end) and, with ``notify``, the
    listings' ``pg_notify`` in its FROM (a volatile call, never planned away). Built, and compiled,
    once per shape."""
    table = Reservation.__table__
    row = select(*(bindparam(column, type_=table.c[column].type) for column in _RESERVATION_COLUMNS))
    if notify:
        row = row.select_from(select(func.pg_notify(bindparam("channel"), bindparam("payload")).label("sent"))
                              .subquery("notice"))
    lines = ReservationLine.__table__
    return (insert(table).from_select(_RESERVATION_COLUMNS, row)
            .add_cte(insert(lines).from_select(line_columns, rows_selected(lines, "l", line_columns, count))
                     .cte("write_lines")))


def _stock_low(row: Row, left: int) -> Envelope:
    data = StockLow(shop_id=row.shop_id, owner_id=row.shop_owner_id, product_id=row.product_id,
                    product_name=row.product_name, variant_id=row.id, variant_label=row.label, stock=left,
                    threshold=row.low_stock_threshold)
    return Envelope(type="stock.low", source="catalog", data=data.model_dump())


def _reply(reservation: dict, lines: list[dict], found: dict[int, Row], cipher: FieldCipher,
           request: ReservationRequest) -> dict:
    """The reply as JSON values, in the shape of ``ReservationOut`` (the contract orders validates)."""
    shop = next(iter(found.values()))
    terms = {"id": reservation["shop_id"], "owner_id": shop.shop_owner_id, "name": shop.shop_name,
             "slug": shop.shop_slug, "phone": shop.shop_phone, "delivery": shop.shop_delivery,
             "min_order_value": shop.shop_min_order_value, "bank_bin": None, "bank_account": None,
             "bank_holder": None}
    if request.payment_method == "bank_transfer" and shop.shop_bank_account_encrypted:
        # Decrypted only for the order that is to be paid into it (orders keeps it encrypted again).
        terms |= {"bank_bin": shop.shop_bank_bin, "bank_account": cipher.decrypt(shop.shop_bank_account_encrypted),
                  "bank_holder": shop.shop_bank_holder}
    return to_jsonable_python({
        "id": reservation["id"], "status": reservation["status"], "expires_at": reservation["expires_at"],
        "shop": terms,
        "lines": [{"variant_id": line["variant_id"], "quantity": line["quantity"], "unit_price": line["unit_price"],
                   "price_kind": line["price_kind"], "product_id": found[line["variant_id"]].product_id,
                   "product_name": found[line["variant_id"]].product_name,
                   "variant_label": found[line["variant_id"]].label,
                   "weight_grams": found[line["variant_id"]].weight_grams} for line in lines],
    })


async def _replay(session: AsyncSession, reservation: Reservation, request: ReservationRequest,
                  cipher: FieldCipher) -> dict:
    lines = [{"variant_id": line.variant_id, "quantity": line.quantity, "unit_price": line.unit_price,
              "price_kind": line.price_kind} for line in (await session.scalars(select(ReservationLine).where(
                  ReservationLine.reservation_id == reservation.id).order_by(ReservationLine.variant_id))).all()]
    if {line["variant_id"]: line["quantity"] for line in lines} != _summed(request):
        raise ReservationMismatch("This reservation id was used for other lines")
    if reservation.status == ReservationStatus.released:
        raise ReservationClosed("This reservation was released; make a new one")
    found = {row.id: row for row in (await session.execute(
        _VARIANTS, {"ids": [line["variant_id"] for line in lines]})).all()}
    return _reply({"id": reservation.id, "shop_id": reservation.shop_id, "status": reservation.status,
                   "expires_at": reservation.expires_at}, lines, found, cipher, request)


async def commit(session: AsyncSession, reservation_id: str) -> ReservationStatus:
    """The order exists: the stock stays taken. Idempotent."""
    status = (await commit_many(session, [reservation_id])).get(reservation_id)
    if status is None:
        raise NotFound("No such reservation")
    if status == ReservationStatus.released:
        raise ReservationClosed("The reservation expired or was released before it was committed")
    return status


async def commit_many(session: AsyncSession, reservation_ids: list[str]) -> dict[str, ReservationStatus]:
    """Commit every held reservation of ``reservation_ids`` in one transaction (the orders service
    sends the reservations of all the orders it stored meanwhile). Returns each known reservation's
    status afterwards: ``committed`` (now or before) or ``released`` (too late: it expired or was
    released first); unknown ids are left out. Idempotent."""
    ids = sorted(set(reservation_ids))
    await session.execute(
        update(Reservation).where(Reservation.id.in_(ids), Reservation.status == ReservationStatus.held)
        .values(status=ReservationStatus.committed, committed_at=utcnow()).execution_options(synchronize_session=False))
    # Read back in the same transaction: after the commit it would take another one.
    return dict((await session.execute(select(Reservation.id, Reservation.status)
                                        .where(Reservation.id.in_(ids)))).all())


async def release(session: AsyncSession, reservation_id: str) -> tuple[Reservation, bool]:
    """Give the stock back (an abandoned or cancelled order). Only the first release restores it.

    The variants' rows are locked first, in id order, then the reservation's: the order a
    reservation takes them in (its stock, then its row). A retry of the reservation that overlaps its
    release so waits for the release, then finds the id taken and says it was released; the other
    way round each held what the other wanted next and PostgreSQL broke the deadlock by failing one."""
    lines = (await session.execute(
        select(ReservationLine.variant_id, ReservationLine.quantity)
        .where(ReservationLine.reservation_id == reservation_id).order_by(ReservationLine.variant_id))).all()
    products: set[int] = set()
    if lines:
        products = set((await session.scalars(
            select(Variant.product_id).where(Variant.id.in_([line.variant_id for line in lines]))
            .order_by(Variant.id).with_for_update())).all())
    changed = await session.execute(
        update(Reservation).where(Reservation.id == reservation_id,
                                  Reservation.status != ReservationStatus.released)
        .values(status=ReservationStatus.released, released_at=utcnow()))
    if changed.rowcount == 1:
        for line in lines:
            await session.execute(update(Variant).where(Variant.id == line.variant_id)
                                  .values(stock=Variant.stock + line.quantity))
        await refresh_listing(session, products)
    reservation = await session.get(Reservation, reservation_id)
    if reservation is None:
        raise NotFound("No such reservation")
    return reservation, changed.rowcount == 1


async def expired(session: AsyncSession, limit: int = 100) -> list[str]:
    return list((await session.scalars(
        select(Reservation.id).where(Reservation.status == ReservationStatus.held, Reservation.expires_at < utcnow())
        .order_by(Reservation.expires_at).limit(limit))).all())

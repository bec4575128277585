"""Placing orders (the saga) and moving them through their states. Endpoints call these.

The saga, per order (docs/architecture.md, "Placing an order"):
1. The idempotency key is claimed (see idempotency.py).
2. The catalog reserves every line in one transaction and returns the authoritative prices.
3. Here the order, its lines (name and price snapshots), its history, an ``order.placed`` outbox
   row and the idempotency key's reply are stored as one fact: one transaction, on PostgreSQL one
   statement (``store``).
4. The reservation is committed at the catalog, by the reconciler, which the stored order wakes: it
   commits those of all orders stored meanwhile in one call. If that fails, its next round retries;
   a reservation never committed is released by the catalog after its TTL, so a crash at any step
   leaks no stock.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from pydantic_core import to_jsonable_python
from sqlalchemy import Table, Update, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.auth import Principal
from common.crypto import FieldCipher
from common.db import note_added, row_params, rows_selected
from common.errors import Conflict, NotFound, UnprocessableEntity
from common.events import Envelope, OrderChanged, OrderLineSummary
from common.outbox import outbox_values
from common.pagination import keyset_page
from common.reservations import ReservationOut, ShopDelivery
from services.orders.catalog_client import CatalogClient, CatalogUnavailable
from services.orders.orders import idempotency, states
from services.orders.orders.models import Order, OrderHistory, OrderLine, OrderStatus, PaymentStatus, utcnow
from services.orders.orders.schemas import CONSENT_PURPOSES, HistoryOut, LineOut, OrderFields, OrderOut
from services.orders.outbox import OutboxEvent
from services.orders.shipments.service import shipment_of

log = logging.getLogger("orders.saga")
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_code() -> str:
    return "CV-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(5))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class IllegalTransition(Conflict):
    slug, title = "illegal-transition", "This order cannot make that move now"


def delivery_fee(delivery: ShopDelivery, method: str, province_code: str, subtotal: int) -> int:
    if method == "pickup":
        if not delivery.pickup:
            raise _field_error("body.delivery_method", "this shop does not offer pickup", "no_pickup")
        return 0
    fee = delivery.fee_by_province.get(province_code, delivery.flat_fee)
    if fee is None:
        raise _field_error("body.address.province_code", "this shop does not deliver to this province",
                           "no_delivery")
    free_above = delivery.free_above
    return 0 if free_above is not None and subtotal >= free_above else fee


def _field_error(field: str, message: str, kind: str) -> UnprocessableEntity:
    return UnprocessableEntity(message, errors=[{"field": field, "message": message, "type": kind}])


def event_for(order: Order, kind: str, actor_role: str, note: str = "") -> OutboxEvent:
    envelope = _envelope({name: getattr(order, name) for name in _EVENT_FIELDS},
                         [{name: getattr(ln, name) for name in _EVENT_LINE_FIELDS} for ln in order.lines],
                         kind, actor_role, note)
    return OutboxEvent(id=envelope.id, type=envelope.type, version=envelope.version, data=envelope.data,
                       occurred_at=envelope.occurred_at)


_EVENT_FIELDS = ("id", "code", "shop_id", "shop_owner_id", "shop_name", "buyer_id", "status", "payment_status",
                 "payment_method", "total", "contact", "locale")
_EVENT_LINE_FIELDS = ("product_name", "variant_label", "quantity", "unit_price")


def _envelope(order: dict, lines: list[dict], kind: str, actor_role: str, note: str) -> Envelope:
    data = OrderChanged(
        order_id=order["id"], code=order["code"], shop_id=order["shop_id"], shop_owner_id=order["shop_owner_id"],
        shop_name=order["shop_name"], buyer_id=order["buyer_id"], status=order["status"],
        payment_status=order["payment_status"], payment_method=order["payment_method"], total=order["total"],
        contact_name=order["contact"].get("name", ""), contact_email=order["contact"].get("email"),
        buyer_locale=order["locale"],
        lines=[OrderLineSummary(**{name: ln[name] for name in _EVENT_LINE_FIELDS}) for ln in lines],
        actor_role=actor_role, note=note)
    return Envelope(type=f"order.{kind}", source="orders", data=data.model_dump())


@dataclass
class Placed:
    """An order about to be stored, as plain rows: the ``orders`` row's columns (its ``id`` once
    stored), its lines' and its history's (without ``order_id``), and the tracking link's token.
    Plain values rather than ORM instances: nothing on the placing path needs the ORM's bookkeeping
    (``store`` writes them with Core statements, ``to_created`` reads them)."""

    order: dict
    lines: list[dict]
    history: list[dict]
    tracking_token: str


def build_order(reservation: ReservationOut, data: OrderFields, buyer: Principal | None, source: str,
                cipher: FieldCipher, checkout_id: str | None = None) -> Placed:
    """An unsaved order from the catalog's reservation reply: the catalog's prices, nothing else."""
    shop = reservation.shop
    lines = [{"variant_id": ln.variant_id, "product_id": ln.product_id, "product_name": ln.product_name,
              "variant_label": ln.variant_label, "quantity": ln.quantity, "unit_price": ln.unit_price,
              "price_kind": ln.price_kind, "line_total": ln.unit_price * ln.quantity}
             for ln in reservation.lines]
    subtotal = sum(line["line_total"] for line in lines)
    if subtotal < shop.min_order_value:
        raise _field_error("body.lines", f"this shop's minimum order is {shop.min_order_value} ₫",
                           "below_min_order_value")
    fee = delivery_fee(shop.delivery, data.delivery_method, data.address.province_code if data.address else "",
                       subtotal)
    token = secrets.token_urlsafe(24)
    bank = None
    if data.payment_method == "bank_transfer":
        if not (shop.bank_bin and shop.bank_account):
            raise _field_error("body.payment_method", "this shop does not take bank transfers yet", "no_bank")
        # The shop's account as it was when the order was placed, encrypted at rest like the catalog's.
        bank = {"bin": shop.bank_bin, "account_encrypted": cipher.encrypt(shop.bank_account),
                "last4": shop.bank_account[-4:], "holder": shop.bank_holder}
    if source == "phone":  # taken by the grower: a call, or a chat it names
        source = getattr(data, "source", source)
    now = utcnow()
    buyer_id = buyer.sub if buyer else None
    order = {
        "code": new_code(), "shop_id": shop.id, "shop_owner_id": shop.owner_id, "shop_name": shop.name,
        "shop_slug": shop.slug, "shop_phone": shop.phone, "buyer_id": buyer_id, "checkout_id": checkout_id,
        "source": source, "status": OrderStatus.placed.value, "payment_method": data.payment_method,
        "payment_status": PaymentStatus.unpaid.value, "delivery_method": data.delivery_method,
        "contact": data.contact.model_dump(), "address": data.address.model_dump() if data.address else {},
        "note": data.note, "locale": data.locale, "subtotal": subtotal, "delivery_fee": fee,
        "total": subtotal + fee, "bank": bank,
        "consent": {"purposes": CONSENT_PURPOSES, "given_at": now.isoformat()},
        "tracking_token_hash": token_hash(token), "tracking_token_encrypted": cipher.encrypt(token),
        "buyer_mail": "pending" if data.contact.email else None, "reservation_id": reservation.id,
        "reservation_state": "held", "carrier": None, "tracking_code": None, "created_at": now, "updated_at": now,
    }
    history = [{"action": "place", "from_status": None, "to_status": OrderStatus.placed.value, "actor_id": buyer_id,
                "actor_role": _actor_role(buyer, source), "note": "", "at": now}]
    return Placed(order, lines, history, token)


def _actor_role(principal: Principal | None, source: str = "web") -> str:
    if principal is None:
        return "guest"
    return principal.role


def to_out(order: Order, role: str) -> OrderOut:
    return OrderOut.model_validate({
        **order.model_dump(exclude={"lines", "history"}),
        "lines": [line.model_dump() for line in order.lines],
        "history": [h.model_dump() for h in order.history],
        "allowed_actions": states.allowed_actions(order, role),
        "shipment": shipment_of(order),
    })


def to_created(placed: Placed, base_url: str, role: str) -> dict:
    """The 201's body (``OrderCreated``, as JSON values) of a stored order, from its plain rows: the
    same fields, in the same order and the same JSON forms as ``OrderCreated(...).model_dump(mode="json")``
    (tests/orders hold the two equal)."""
    order = placed.order
    return to_jsonable_python({
        **{name: order[name] for name in _OUT_FIELDS_BEFORE_LINES},
        "lines": [{name: line[name] for name in _LINE_OUT_FIELDS} for line in placed.lines],
        **{name: order[name] for name in _OUT_FIELDS_AFTER_LINES},
        "allowed_actions": states.allowed_for(order["status"], order["payment_status"], role),
        "history": [{name: entry[name] for name in _HISTORY_OUT_FIELDS} for entry in placed.history],
        "shipment": None,  # set when it ships
        "created_at": order["created_at"], "updated_at": order["updated_at"],
        "tracking_url": f"{base_url}/t/{placed.tracking_token}",
    })


_OUT_FIELDS_BEFORE_LINES = ("id", "code", "shop_id", "shop_name", "status", "payment_status", "payment_method",
                            "delivery_method", "source")
_OUT_FIELDS_AFTER_LINES = ("contact", "address", "note", "subtotal", "delivery_fee", "total")
_LINE_OUT_FIELDS = tuple(LineOut.model_fields)
_HISTORY_OUT_FIELDS = tuple(HistoryOut.model_fields)


async def release_quietly(catalog: CatalogClient, reservation_ids: list[str]) -> None:
    """Give back what a failed attempt reserved; if the catalog is down, its TTL sweeper will."""
    for reservation_id in reservation_ids:
        try:
            await catalog.release(reservation_id)
        except Exception as exc:  # noqa: BLE001 - best effort: the TTL is the safety net
            log.warning("could not release reservation %s now (%s); its TTL will", reservation_id, exc)


async def store(session: AsyncSession, placed: list[Placed], *, key_row: int, reply: Callable[[], dict],
                autocommit: async_sessionmaker) -> dict:
    """Stores the orders, their lines and history, their order.placed events and the Idempotency-Key's
    reply (``reply()``, built once the orders have their ids) as one fact, and returns that reply.

    Plain INSERTs into the tables rather than the ORM's unit of work: on the busiest path there is,
    its bookkeeping cost more CPU than the statements. On PostgreSQL they are one statement, run in
    autocommit (``autocommit``'s sessions): the ids drawn first, then every row written as a CTE of
    the key's UPDATE, which makes three round trips per order where a transaction of its own takes
    eight (decision record 0033). SQLite writes them in ``session``'s transaction and commits it.
    Either way the events' rows are noted as added, so that the commit wakes the outbox relay."""
    if session.bind.dialect.name == "postgresql":
        async with autocommit() as one:
            return await _store_in_one_statement(one, placed, key_row, reply)
    for attempt in range(CODE_DRAWS):
        try:
            for item in placed:
                item.order["id"] = await session.scalar(_INSERT_ORDER, item.order)
            break
        except IntegrityError:  # a code collision (1 in 20 million): draw again
            await session.rollback()
            if attempt == CODE_DRAWS - 1:
                raise
            _redraw_codes(placed)
    await session.execute(_INSERT_LINE, _lines_of(placed))
    await session.execute(_INSERT_HISTORY, _history_of(placed))
    await session.execute(_INSERT_EVENT, _events_of(placed))
    body = reply()
    await idempotency.complete(session, key_row, 201, body)
    note_added(session, OutboxEvent)
    await session.commit()
    return body


CODE_DRAWS = 5  # an order code is drawn again this often on a collision before the order fails


async def _store_in_one_statement(session: AsyncSession, placed: list[Placed], key_row: int,
                                  reply: Callable[[], dict]) -> dict:
    ids = (await session.scalars(_NEXT_ORDER_IDS, {"n": len(placed)})).all()
    for item, order_id in zip(placed, ids, strict=True):
        item.order["id"] = order_id
    for attempt in range(CODE_DRAWS):
        body = reply()
        tables = {"o": [item.order for item in placed], "l": _lines_of(placed), "h": _history_of(placed),
                  "e": _events_of(placed)}
        params = idempotency.completed(key_row, 201, body)
        for prefix, rows in tables.items():
            params.update(row_params(prefix, rows))
        statement = _writing_all(tuple((prefix, tuple(rows[0]), len(rows)) for prefix, rows in tables.items()))
        try:
            await session.execute(statement, params)
            break
        except IntegrityError:  # a code collision: nothing was written; draw again
            await session.rollback()
            if attempt == CODE_DRAWS - 1:
                raise
            _redraw_codes(placed)
    note_added(session, OutboxEvent)
    await session.commit()  # nothing left to send in autocommit: the commit hooks run
    return body


_TABLES = {"o": Order.__table__, "l": OrderLine.__table__, "h": OrderHistory.__table__, "e": OutboxEvent.__table__}
_NEXT_ORDER_IDS = text("SELECT nextval(pg_get_serial_sequence('orders', 'id')) FROM generate_series(1, :n)")


@functools.cache
def _writing_all(shape: tuple[tuple[str, tuple[str, ...], int], ...]) -> Update:
    """The key's UPDATE with an INSERT per table as its CTEs (PostgreSQL runs every data-modifying CTE
    of a statement, referenced or not, in the statement's one snapshot), for ``shape``: per table its
    parameter prefix, columns and rows. Built once per shape (one order of three lines, …), and
    compiled once per shape too: SQLAlchemy's cache keeps it (a test holds it cacheable)."""
    statement = idempotency.COMPLETE
    for prefix, columns, count in shape:
        table: Table = _TABLES[prefix]
        rows = rows_selected(table, prefix, columns, count)
        statement = statement.add_cte(insert(table).from_select(columns, rows).cte(f"write_{table.name}"))
    return statement


def _redraw_codes(placed: list[Placed]) -> None:
    for item in placed:
        item.order["code"] = new_code()


def _lines_of(placed: list[Placed]) -> list[dict]:
    return [line | {"order_id": item.order["id"]} for item in placed for line in item.lines]


def _history_of(placed: list[Placed]) -> list[dict]:
    return [entry | {"order_id": item.order["id"]} for item in placed for entry in item.history]


def _events_of(placed: list[Placed]) -> list[dict]:
    return [outbox_values(_envelope(item.order, item.lines, "placed", item.history[0]["actor_role"], ""))
            for item in placed]


_INSERT_ORDER = insert(Order.__table__).returning(Order.__table__.c.id)
_INSERT_LINE = insert(OrderLine.__table__)
_INSERT_HISTORY = insert(OrderHistory.__table__)
_INSERT_EVENT = insert(OutboxEvent.__table__)


# ---- Reading -------------------------------------------------------------------------------------

def viewer_role(order: Order, principal: Principal | None) -> str | None:
    """The caller's role on this order, or None if it is not theirs to see."""
    if principal is None:
        return None
    if principal.role == "admin":
        return "admin"
    if principal.role == "grower" and order.shop_owner_id == principal.sub and principal.allows("orders:read"):
        return "grower"
    if principal.role == "buyer" and order.buyer_id == principal.sub:
        return "buyer"
    return None


async def get_for(session: AsyncSession, order_id: int, principal: Principal,
                  for_update: bool = False) -> tuple[Order, str]:
    """The order and the caller's role on it; 404 if it is not theirs. ``for_update`` locks the row
    until the transaction ends (PostgreSQL; SQLite writers already hold the database's write lock),
    so two moves of one order cannot both start from the same state."""
    stmt = select(Order).where(Order.id == order_id)
    order = await session.scalar(stmt.with_for_update() if for_update else stmt)
    role = viewer_role(order, principal) if order else None
    if order is None or role is None:
        raise NotFound("No such order")
    return order, role


async def get_by_token(session: AsyncSession, token: str) -> Order:
    if not token or len(token) > 64:
        raise NotFound("No such order")
    order = await session.scalar(select(Order).where(Order.tracking_token_hash == token_hash(token)))
    if order is None:
        raise NotFound("No such order")
    return order


async def list_for(session: AsyncSession, principal: Principal, *, status: str | None, paid: bool | None,
                   since, until, limit: int, cursor: str | None) -> tuple[list[Order], str | None]:
    stmt = select(Order)
    if principal.role == "grower":
        stmt = stmt.where(Order.shop_owner_id == principal.sub)
    elif principal.role == "buyer":
        stmt = stmt.where(Order.buyer_id == principal.sub)
    if status:
        stmt = stmt.where(Order.status == status)
    if paid is not None:
        stmt = stmt.where(Order.payment_status == (PaymentStatus.paid if paid else PaymentStatus.unpaid))
    if since is not None:
        stmt = stmt.where(Order.created_at >= since)
    if until is not None:
        stmt = stmt.where(Order.created_at < until)
    return await keyset_page(session, stmt, Order.id, limit, cursor)


async def counts_for(session: AsyncSession, principal: Principal) -> dict[str, int]:
    stmt = select(Order.status, func.count()).where(Order.shop_owner_id == principal.sub).group_by(Order.status)
    found = dict((await session.execute(stmt)).all())
    return {status.value: found.get(status.value, 0) for status in OrderStatus}


# ---- Moving --------------------------------------------------------------------------------------

async def transition(session: AsyncSession, order: Order, action: str, role: str, actor_id: str | None,
                     note: str = "", *, catalog: CatalogClient) -> Order:
    """Move the order (or mark it paid); an illegal move is a 409 naming the allowed ones."""
    if not states.can(action, order, role):
        raise IllegalTransition(f"Cannot {action} an order that is {order.status}"
                                + (f" and {order.payment_status}" if action == "mark-paid" else ""),
                                allowed_actions=states.allowed_actions(order, role))
    before = order.status
    if action == "mark-paid":
        order.payment_status = PaymentStatus.paid
        kind = "paid"
    else:
        order.status = states.TRANSITIONS[action][1]
        kind = order.status
        if order.status == OrderStatus.cancelled:
            order.reservation_state = "release-pending"
    order.updated_at = utcnow()
    order.history.append(OrderHistory(action=action, from_status=before, to_status=order.status, actor_id=actor_id,
                                      actor_role=role, note=note))
    session.add(event_for(order, kind, role, note))
    if order.reservation_state == "release-pending":
        # The cancel is committed before the catalog is asked for the stock back: once it is, a
        # failed or lost call is the reconciler's to retry ("release-pending"); the note that the
        # stock came back is then the request's unit of work.
        await session.commit()
        await release_stock(session, order, catalog=catalog)
    return order


async def release_stock(session: AsyncSession, order: Order, *, catalog: CatalogClient) -> None:
    """A cancelled order's stock goes back, once: the catalog releases a reservation only once."""
    try:
        await catalog.release(order.reservation_id)
    except CatalogUnavailable:
        log.warning("stock of cancelled %s not returned yet; the reconciler will retry", order.code)
        return
    order.reservation_state = "released"


def new_reservation_id() -> str:
    return uuid.uuid4().hex

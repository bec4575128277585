"""The grower's desk: orders read in pages for the CSV export, and the packing list (what to
prepare, per variant, across the orders still to ship).

Dates: see ``common.vietnam.local_bound`` (Vietnamese days).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import raiseload, selectinload

from common.auth import Principal
from common.db import Database
from common.text import fold
from services.orders.desk.schemas import PackingLine, PackingList, PackingOrder
from services.orders.orders.models import Order, OrderLine, OrderStatus, PaymentStatus

PAGE_SIZE = 200  # orders read per query while streaming an export
OPEN_STATUSES = (OrderStatus.placed, OrderStatus.confirmed)  # still to pack


@dataclass(frozen=True)
class DeskFilter:
    statuses: tuple[str, ...] = ()  # empty: every state
    paid: bool | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    owner: str | None = field(default=None)  # None only for an admin: every shop

    @classmethod
    def of(cls, principal: Principal, **kw) -> DeskFilter:
        return cls(owner=None if principal.role == "admin" else principal.sub, **kw)

    def where(self) -> list:
        conds = []
        if self.owner is not None:
            conds.append(Order.shop_owner_id == self.owner)
        if self.statuses:
            conds.append(Order.status.in_(self.statuses))
        if self.paid is not None:
            conds.append(Order.payment_status == (PaymentStatus.paid if self.paid else PaymentStatus.unpaid))
        if self.since is not None:
            conds.append(Order.created_at >= self.since)
        if self.until is not None:
            conds.append(Order.created_at < self.until)
        return conds


async def iter_orders(db: Database, filt: DeskFilter, page_size: int | None = None) -> AsyncIterator[list[Order]]:
    """The matching orders, oldest first, a page at a time with their lines. Each page is its own
    short session, so a slow download holds no connection between pages."""
    size = page_size or PAGE_SIZE
    after = 0
    while True:
        stmt = (select(Order).where(*filt.where(), Order.id > after).order_by(Order.id).limit(size)
                .options(selectinload(Order.lines), raiseload(Order.history)))
        async with db.sessionmaker() as session:
            page = list((await session.scalars(stmt)).all())
        if not page:
            return
        yield page
        if len(page) < size:
            return
        after = page[-1].id


@dataclass
class _Pending:
    product_id: int
    variant_id: int
    product_name: str
    variant_label: str
    quantity: int = 0
    orders: dict[str, int] = field(default_factory=dict)


async def packing_list(db: Database, filt: DeskFilter) -> PackingList:
    """Quantities per variant to prepare, summed across the matching orders (by default the placed
    and confirmed ones), sorted by product then variant; names as in the newest order."""
    pending: dict[int, _Pending] = {}
    codes: set[str] = set()
    after = 0
    while True:
        stmt = (select(OrderLine.id, OrderLine.variant_id, OrderLine.product_id, OrderLine.product_name,
                       OrderLine.variant_label, OrderLine.quantity, Order.code)
                .join(Order, Order.id == OrderLine.order_id).where(*filt.where(), OrderLine.id > after)
                .order_by(OrderLine.id).limit(PAGE_SIZE * 5))
        async with db.sessionmaker() as session:
            rows = (await session.execute(stmt)).all()
        for line_id, variant_id, product_id, product_name, variant_label, quantity, code in rows:
            item = pending.setdefault(variant_id, _Pending(product_id, variant_id, product_name, variant_label))
            item.product_name, item.variant_label = product_name, variant_label  # the newest snapshot wins
            item.quantity += quantity
            item.orders[code] = item.orders.get(code, 0) + quantity
            codes.add(code)
            after = line_id
        if len(rows) < PAGE_SIZE * 5:
            break
    items = sorted(pending.values(), key=lambda p: (fold(p.product_name), p.product_id, fold(p.variant_label),
                                                     p.variant_id))
    return PackingList(
        items=[PackingLine(product_id=p.product_id, variant_id=p.variant_id, product_name=p.product_name,
                           variant_label=p.variant_label, quantity=p.quantity, order_count=len(p.orders),
                           orders=[PackingOrder(code=c, quantity=q) for c, q in p.orders.items()])
               for p in items],
        statuses=list(filt.statuses), since=filt.since, until=filt.until, order_count=len(codes),
        total_quantity=sum(p.quantity for p in items))

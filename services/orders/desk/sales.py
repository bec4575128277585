"""How a month went: orders, revenue, retail against wholesale, the top varieties, the sources and the
bank transfers still unpaid, for one shop and one month in Vietnam time.

A shop has hundreds of orders a month, not millions: the orders are read once (only the columns the
sums need) and bucketed by Vietnamese day here, which works the same on SQLite and PostgreSQL; the
lines are summed by the database."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from common.db import Database
from common.errors import UnprocessableEntity
from common.vietnam import VN_TZ
from services.orders.desk.schemas import DaySales, SalesMonth, SourceSales, UnpaidTransfer, VarietySales
from services.orders.desk.service import DeskFilter
from services.orders.orders.models import Order, OrderLine, OrderStatus, PaymentStatus

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
TOP = 5
UNPAID_LISTED = 50


def month_bounds(month: str | None) -> tuple[str, dt.datetime, dt.datetime]:
    """``2026-11`` → its first moment and the next month's, Vietnam time; None → this month."""
    if month is None:
        today = dt.datetime.now(VN_TZ).date()
        year, number = today.year, today.month
    else:
        found = MONTH.fullmatch(month)
        if not found or not (1 <= int(found.group(2)) <= 12) or not (2000 <= int(found.group(1)) <= 2999):
            raise UnprocessableEntity("month: a month as YYYY-MM is expected", errors=[
                {"field": "query.month", "message": "a month as YYYY-MM is expected", "type": "month_parsing"}])
        year, number = int(found.group(1)), int(found.group(2))
    start = dt.datetime(year, number, 1, tzinfo=VN_TZ)
    end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=VN_TZ)
    return f"{year:04d}-{number:02d}", start, end


async def month_sales(db: Database, filt: DeskFilter, month: str, since: dt.datetime,
                      until: dt.datetime) -> SalesMonth:
    where = [*filt.where(), Order.created_at >= since, Order.created_at < until]
    kept = [*where, Order.status != OrderStatus.cancelled]
    async with db.sessionmaker() as session:
        rows = (await session.execute(
            select(Order.id, Order.code, Order.status, Order.payment_method, Order.payment_status, Order.source,
                   Order.total, Order.created_at, Order.contact).where(*where).order_by(Order.id))).all()
        lines = (await session.execute(
            select(OrderLine.product_id, OrderLine.price_kind, func.sum(OrderLine.quantity),
                   func.sum(OrderLine.line_total), func.max(OrderLine.id))
            .join(Order, Order.id == OrderLine.order_id).where(*kept)
            .group_by(OrderLine.product_id, OrderLine.price_kind))).all()
        newest = {line_id for *_, line_id in lines}
        names = dict((await session.execute(select(OrderLine.product_id, OrderLine.product_name)
                                            .where(OrderLine.id.in_(newest)).order_by(OrderLine.id))).all()) \
            if newest else {}

    days = {since.date() + dt.timedelta(days=i): [0, 0] for i in range((until - since).days)}
    sources: dict[str, list[int]] = {}
    cancelled = revenue = paid = 0
    unpaid: list[UnpaidTransfer] = []
    unpaid_count = unpaid_amount = 0
    for id_, code, status, method, payment, source, total, created, contact in rows:
        if status == OrderStatus.cancelled:
            cancelled += 1
            continue
        day = days.setdefault(created.astimezone(VN_TZ).date(), [0, 0])
        day[0] += 1
        day[1] += total
        per_source = sources.setdefault(source, [0, 0])
        per_source[0] += 1
        per_source[1] += total
        revenue += total
        if payment == PaymentStatus.paid:
            paid += total
        elif method == "bank_transfer":
            unpaid_count += 1
            unpaid_amount += total
            if len(unpaid) < UNPAID_LISTED:
                unpaid.append(UnpaidTransfer(id=id_, code=code, buyer_name=(contact or {}).get("name", ""),
                                             total=total, status=status, created_at=created))

    varieties: dict[int, VarietySales] = {}
    retail = wholesale = 0
    for product_id, kind, quantity, amount, _ in lines:
        item = varieties.setdefault(product_id, VarietySales(product_id=product_id, quantity=0, revenue=0,
                                                             product_name=names.get(product_id, "")))
        item.quantity += int(quantity)
        item.revenue += int(amount)
        if kind == "wholesale":
            wholesale += int(amount)
        else:
            retail += int(amount)
    top = sorted(varieties.values(), key=lambda v: (-v.revenue, -v.quantity, v.product_id))[:TOP]
    return SalesMonth(
        month=month, since=since, until=until, orders=sum(d[0] for d in days.values()), cancelled=cancelled,
        revenue=revenue, goods=retail + wholesale, retail=retail, wholesale=wholesale, paid=paid,
        days=[DaySales(day=d, orders=v[0], revenue=v[1]) for d, v in sorted(days.items())],
        top_varieties=top,
        sources=[SourceSales(source=s, orders=v[0], revenue=v[1])
                 for s, v in sorted(sources.items(), key=lambda kv: (-kv[1][0], kv[0]))],
        unpaid_transfers=unpaid, unpaid_transfer_count=unpaid_count, unpaid_transfer_amount=unpaid_amount)

"""The orders service's gauges at each scrape of ``/metrics``: the orders in each open state (the ones a
grower still has to act on), counted on the status index, each up to 100,000. Delivered and cancelled
orders only grow: ``http_requests_total`` and the sales figures count those."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_client import Gauge
from sqlalchemy import select

from common.observability import capped_count
from services.orders.orders.models import Order, OrderStatus

OPEN_STATES = (OrderStatus.placed, OrderStatus.confirmed, OrderStatus.shipped)
BY_STATE = Gauge("orders_by_state", "Orders in each open state: placed, confirmed, shipped (up to 100,000 each)",
                 ["status"])


async def order_metrics(app: FastAPI) -> None:
    async with app.state.db.sessionmaker() as session:
        for status in OPEN_STATES:
            BY_STATE.labels(status.value).set(
                await session.scalar(capped_count(select(Order.id).where(Order.status == status))) or 0)

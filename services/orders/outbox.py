"""The orders outbox: every state change writes its event here in the same transaction."""

from common.outbox import OutboxEventBase, outbox_indexes
from services.orders.base import OrdersModel


class OutboxEvent(OrdersModel, OutboxEventBase, table=True):
    __tablename__ = "outbox_events"
    __table_args__ = outbox_indexes("outbox_events")

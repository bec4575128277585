"""The catalog's outbox: ``stock.low`` events, written in the transaction that lowered the stock."""

from common.events import Envelope
from common.outbox import OutboxEventBase, outbox_indexes
from services.catalog.base import CatalogModel


class OutboxEvent(CatalogModel, OutboxEventBase, table=True):
    __tablename__ = "outbox_events"
    __table_args__ = outbox_indexes("outbox_events")


def outbox_row(envelope: Envelope) -> OutboxEvent:
    return OutboxEvent(id=envelope.id, type=envelope.type, version=envelope.version,
                       data=envelope.data, occurred_at=envelope.occurred_at)

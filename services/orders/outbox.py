"""The orders outbox: every state change writes its event here in the same transaction."""

from common.outbox import OutboxEventBase, outbox_indexes


class OutboxEvent(OutboxEventBase, table=True):
    __tablename__ = "outbox_events"
    __table_args__ = outbox_indexes("outbox_events")

"""Events notify has handled, recorded in the same transaction as their side effect."""

from common.outbox import ProcessedEventBase


class ProcessedEvent(ProcessedEventBase, table=True):
    __tablename__ = "processed_events"

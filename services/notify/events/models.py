"""Events notify has handled, recorded in the same transaction as their side effect."""

from common.outbox import ProcessedEventBase
from services.notify.base import NotifyModel


class ProcessedEvent(NotifyModel, ProcessedEventBase, table=True):
    __tablename__ = "processed_events"

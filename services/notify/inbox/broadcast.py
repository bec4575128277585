"""Wakes the open notification streams of an account when its inbox changes (within this process)."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class Broadcaster:
    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Event]] = defaultdict(set)

    def subscribe(self, account_id: str) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners[account_id].add(event)
        return event

    def unsubscribe(self, account_id: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(account_id)
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del self._listeners[account_id]

    def publish(self, account_ids: set[str]) -> None:
        for account_id in account_ids:
            for event in self._listeners.get(account_id, ()):
                event.set()

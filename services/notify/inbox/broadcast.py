"""Wakes the open notification streams of an account when its inbox changes.

Within a process, an ``asyncio.Event`` per open stream. With several replicas (``EVENT_BUS_URL`` on
NATS) the wake also goes out on NATS core, subject ``<namespace>.inbox.wake``, so that a stream held
by another replica hears of an event handled here at once rather than at its next heartbeat. A wake
is only a nudge: the stream reads its inbox from the database, so a lost wake costs a heartbeat's
delay, never a notification.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict

import orjson

log = logging.getLogger("notify.broadcast")


class Broadcaster:
    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Event]] = defaultdict(set)
        # Set when the process is told to stop: every open stream ends at once (its client reconnects
        # with Last-Event-ID, to another replica) instead of holding the shutdown for its grace period.
        self.closing = False

    def close_streams(self) -> None:
        self.closing = True
        for listeners in self._listeners.values():
            for event in listeners:
                event.set()

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

    def open_streams(self) -> int:
        """The streams open on this replica (``notify_live_streams``)."""
        return sum(len(listeners) for listeners in self._listeners.values())

    def publish(self, account_ids: set[str]) -> None:
        self.wake_here(account_ids)

    def wake_here(self, account_ids) -> None:
        for account_id in account_ids:
            for event in self._listeners.get(account_id, ()):
                event.set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class NatsBroadcaster(Broadcaster):
    """Wakes this replica's streams and, through NATS core, every other replica's."""

    def __init__(self, url: str, namespace: str) -> None:
        super().__init__()
        self.url, self.subject = url, f"{namespace}.inbox.wake"
        self.origin = uuid.uuid4().hex  # this replica's own wakes come back to it: skipped
        self.nc = None
        self._sending: set[asyncio.Task] = set()

    async def start(self) -> None:
        from common.bus import connect_nats

        self.nc = await connect_nats(self.url, "notify-wake")
        await self.nc.subscribe(self.subject, cb=self._heard)

    async def stop(self) -> None:
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        if self.nc is not None:
            await self.nc.close()

    def publish(self, account_ids: set[str]) -> None:
        self.wake_here(account_ids)
        if self.nc is None or not account_ids:
            return
        task = asyncio.get_running_loop().create_task(self._send(sorted(account_ids)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, account_ids: list[str]) -> None:
        try:
            await self.nc.publish(self.subject, orjson.dumps({"o": self.origin, "a": account_ids}))
        except Exception as exc:  # noqa: BLE001 - a lost wake costs a heartbeat, not a notification
            log.warning("inbox wake not sent: %s", exc)

    async def _heard(self, msg) -> None:
        try:
            body = orjson.loads(msg.data)
        except orjson.JSONDecodeError:
            return
        if body.get("o") != self.origin:
            self.wake_here(body.get("a") or ())

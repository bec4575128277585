"""The background worker: rounds of work an app repeats for as long as it runs.

Every background job of the apps is a :class:`Worker`: the outbox relay (``common/relay.py``), the
orders reconciler, the mail and webhook senders, the catalog's reservation sweeper and the purges of
what is kept for a while (idempotency keys, finished webhook deliveries). The loop is one:

- A round runs at start, then whenever it is woken (``wake()``: a commit that queued work, an API
  call), and otherwise every ``interval`` seconds, so work left by a restart, or queued by another
  replica, is found. An interval of 0: no timed rounds, only woken ones.
- ``linger``: a woken round waits this long first, so that the wakes of a busy moment (an order stored
  every few milliseconds) share one round instead of paying a round each.
- A wake during a round brings one more round right after it (none is lost; many make one).
- A round that returns true did a full batch: the next one comes at once. ``next_due`` (optional) says
  in how many seconds the next item is due (a retry's time), when that is sooner than ``interval``.
- A failed round is logged and the next one comes after ``interval``: a database or network hiccup
  must not end the worker. ``stop()`` cancels it.

- ``exclusive`` (a database): one round at a time across every replica on that database (an advisory
  lock, ``Database.exclusive``); a replica whose turn it is not waits for the running round to end, then
  runs its own. For work whose order matters (the outbox relay) or that calls out per row (the
  reconciler). Work whose every write is conditional, or a delete of what expired, needs none.

What a round does is the caller's: which rows it claims (so that several replicas share the work, each
row claimed by one), how it retries an item and with which backoff (``backoff`` below, or a schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from common.db import Database

log = logging.getLogger("worker")

Round = Callable[[], Awaitable[bool | None]]


class Worker:
    def __init__(self, name: str, round: Round, *, interval: float, linger: float = 0.0,
                 next_due: Callable[[], Awaitable[float]] | None = None, exclusive: Database | None = None) -> None:
        self.name, self.round, self.interval, self.linger, self.next_due = name, round, interval, linger, next_due
        self.exclusive = exclusive
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        # Cancelled again until it is done: a cancellation that lands as the awaited thing completes can
        # be swallowed (Python 3.11's ``asyncio.wait_for``, in our code or a library's), and the loop
        # would then run on, with this waiting for it for good.
        while self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
        if self._task is not None and not self._task.cancelled() and self._task.exception() is not None:
            log.error("%s stopped with an error", self.name, exc_info=self._task.exception())

    async def _loop(self) -> None:
        idle = self.interval if self.interval > 0 else None  # None: until woken
        if idle is None:
            await self._until_woken(None)
        while True:
            self._wake.clear()  # before the round: a wake during it brings the next one at once
            try:
                more = await self._one_round()
                wait = 0.0 if more else await self.next_due() if self.next_due else idle
            except Exception:  # must outlive a database or network hiccup
                log.exception("%s round failed; will retry", self.name)
                wait = idle
            if wait != 0.0:
                await self._until_woken(wait)

    async def _one_round(self) -> bool | None:
        if self.exclusive is None:
            return await self.round()
        async with self.exclusive.exclusive(self.name):
            return await self.round()

    async def _until_woken(self, timeout: float | None) -> None:
        """Until woken (then ``linger`` more) or ``timeout`` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # (not wait_for, which can swallow a cancellation in 3.11)
                await self._wake.wait()
            if self.linger:
                await asyncio.sleep(self.linger)


async def due_in(db: Database, column, *where, cap: float, floor: float) -> float:
    """Seconds until the earliest ``column`` (a time, such as a retry's ``next_attempt_at``) among the
    rows ``where`` selects, kept between ``floor`` and ``cap``; ``cap`` when there is none."""
    async with db.sessionmaker() as session:
        due = await session.scalar(select(func.min(column)).where(*where))
    if due is None:
        return cap
    return min(cap, max(floor, (due - dt.datetime.now(dt.UTC)).total_seconds()))


def backoff(attempts: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Seconds before the next try: 1, 2, 4, … up to ``cap``, each with ±25 % jitter."""
    delay = min(cap, base * 2 ** max(0, attempts - 1))
    return delay * random.uniform(0.75, 1.25)

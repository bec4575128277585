"""Background work an app repeats for as long as it runs (sweepers, reconcilers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("tasks")


class Periodic:
    """Runs ``work()`` every ``interval`` seconds, and at once when woken (``wake()``); a failed round
    is logged and the next one comes. Wakes during a round bring one more round after it, so none is
    lost, and many wakes make one round. An interval of 0: no timed rounds, only woken ones.

    ``linger``: a woken round waits this long first, so that the wakes of a busy moment (an order
    stored every few milliseconds) share one round instead of paying a round each."""

    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]],
                 linger: float = 0.0) -> None:
        self.name, self.interval, self.work, self.linger = name, interval, work, linger
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        if self.interval <= 0:
            await self._woken(None)
        while True:
            self._wake.clear()  # before the round: a wake during it brings the next one at once
            try:
                await self.work()
            except Exception:  # must outlive a database or network hiccup
                log.exception("%s round failed; will retry", self.name)
            await self._woken(self.interval if self.interval > 0 else None)

    async def _woken(self, timeout: float | None) -> None:
        """Until woken (then ``linger`` more) or ``timeout`` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
            if self.linger:
                await asyncio.sleep(self.linger)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

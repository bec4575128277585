"""Background work an app repeats for as long as it runs (sweepers, reconcilers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("tasks")


class Periodic:
    """Runs ``work()`` every ``interval`` seconds; a failed round is logged and the next one comes.
    An interval of 0 means off."""

    def __init__(self, name: str, interval: float, work: Callable[[], Awaitable[object]]) -> None:
        self.name, self.interval, self.work = name, interval, work
        self._task: asyncio.Task | None = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.work()
            except Exception:  # must outlive a database or network hiccup
                log.exception("%s round failed; will retry", self.name)
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

"""Two relays (two replicas' engines) over one PostgreSQL outbox: each row is published once, and in
the order it was written. The same two relays without the lock publish rows twice: the check bites."""

from __future__ import annotations

import asyncio

import pytest

from common.db import Database
from common.events import Envelope
from common.relay import OutboxRelay
from services.orders.app import MIGRATIONS
from services.orders.outbox import OutboxEvent

ROWS = 120


class Bus:
    """Stands in for JetStream, which would drop a re-sent duplicate by its id and so hide one: this
    one keeps every publish, from whichever relay, in the order they happened."""

    def __init__(self, log: list[tuple[str, int]], who: str) -> None:
        self.log, self.who = log, who

    async def publish(self, envelope: Envelope) -> None:
        await asyncio.sleep(0.001)  # a round trip: the other relay may run meanwhile
        self.log.append((self.who, envelope.data["n"]))

    async def publish_many(self, carried) -> None:  # one by one, so that the other relay may interleave
        for envelope, _ in carried:
            await self.publish(envelope)

    async def aclose(self) -> None:
        pass


class Unlocked(OutboxRelay):
    async def run_once(self) -> bool:
        return await self._round()


@pytest.fixture
def url(postgres):
    yield postgres.urls["orders"]
    postgres.empty()


@pytest.fixture
async def databases(url):
    first, second = Database(url, MIGRATIONS, "orders"), Database(url, MIGRATIONS, "orders")
    await first.migrate()
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def _race(databases, relay_class) -> list[tuple[str, int]]:
    log: list[tuple[str, int]] = []
    relays = [relay_class(db, OutboxEvent, Bus(log, f"relay-{i}"), poll_interval=0.05, batch=10, linger=0)
              for i, db in enumerate(databases)]
    for relay in relays:
        await relay.start()
    try:
        writer = databases[0]
        for n in range(ROWS):
            async with writer.sessionmaker() as session:
                session.add(OutboxEvent(type="order.placed", data={"n": n}))
                await session.commit()
            for relay in relays:
                relay.wake()
            if n % 7 == 0:
                await asyncio.sleep(0.003)
        for _ in range(500):
            if len({n for _, n in log}) == ROWS:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # a late duplicate has time to show
    finally:
        for relay in relays:
            await relay.stop()
    return log


async def test_two_relays_publish_each_row_once_and_in_order(databases) -> None:
    log = await _race(databases, OutboxRelay)
    published = [n for _, n in log]
    assert published == list(range(ROWS)), "each row once, in the order written"
    assert {who for who, _ in log} == {"relay-0", "relay-1"}, "both relays took rounds"


async def test_without_the_lock_two_relays_publish_rows_twice(databases) -> None:
    log = await _race(databases, Unlocked)
    published = [n for _, n in log]
    assert len(published) > len(set(published)), "the race this lock prevents is real"


def test_the_lock_key_is_the_same_in_every_process() -> None:
    from common.db import lock_key

    assert lock_key("orders", "outbox-relay") == lock_key("orders", "outbox-relay")
    assert lock_key("orders", "outbox-relay") != lock_key("catalog", "outbox-relay")
    assert -2**63 <= lock_key("x") < 2**63

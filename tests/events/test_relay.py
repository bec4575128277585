"""The outbox relay: in order, marked sent only once acknowledged, retried with backoff, dead-lettered
and replayable, awake at once after a commit; and JetStream's duplicate window and dead letters."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from sqlalchemy import select, update

from common.bus import Names, NatsPublisher, PublishError
from common.db import Database
from common.events import Envelope
from common.relay import OutboxRelay
from common.worker import backoff
from services.orders.app import MIGRATIONS
from services.orders.outbox import OutboxEvent
from tests.events.stack import NATS_URL, drop_stream, nats_namespace


class Recording:
    """Stands in for the bus to watch the relay's own logic: it can refuse, and it remembers."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.rounds: list[int] = []  # how many events each publish_many carried
        self.refuse = False
        self.poisoned: set[str] = set()  # events refused alone, and any round that carries them

    async def publish(self, envelope: Envelope) -> None:
        if self.refuse or envelope.data["n"] in self.poisoned:
            raise PublishError("bus down" if self.refuse else "malformed")
        self.sent.append(envelope.type + ":" + envelope.data["n"])

    async def publish_many(self, carried: list[tuple[Envelope, dict[str, str]]]) -> None:
        if self.refuse or any(e.data["n"] in self.poisoned for e, _ in carried):
            raise PublishError("refused")
        self.rounds.append(len(carried))
        self.sent += [e.type + ":" + e.data["n"] for e, _ in carried]

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def db(db_urls):
    database = Database(db_urls["orders"], MIGRATIONS, "orders")
    await database.migrate()
    yield database
    await database.dispose()


async def add(db: Database, n: str, kind: str = "order.placed") -> None:
    async with db.sessionmaker() as session:
        session.add(OutboxEvent(type=kind, data={"n": n}))
        await session.commit()


async def test_in_order_and_marked_only_when_acknowledged(db) -> None:
    bus = Recording()
    relay = OutboxRelay(db, OutboxEvent, bus, max_attempts=3)
    for n in "abc":
        await add(db, n)
    bus.refuse = True
    assert await relay.run_once() is False
    async with db.sessionmaker() as session:
        rows = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.occurred_at))).all()
    assert [r.published_at for r in rows] == [None, None, None]
    assert rows[0].attempts == 1 and rows[0].next_attempt_at > dt.datetime.now(dt.UTC)
    assert rows[1].attempts == 0, "the round stops at the first failure: later events wait their turn"
    bus.refuse = False
    async with db.sessionmaker() as session:
        await session.execute(update(OutboxEvent).values(next_attempt_at=dt.datetime.now(dt.UTC)))
        await session.commit()
    await relay.run_once()
    assert bus.sent == ["order.placed:a", "order.placed:b", "order.placed:c"]
    await relay.run_once()
    assert len(bus.sent) == 3, "nothing is sent twice once marked"


async def test_a_round_goes_in_one_publication_and_one_refused_goes_one_by_one(db) -> None:
    bus = Recording()
    relay = OutboxRelay(db, OutboxEvent, bus, max_attempts=3)
    for n in "abc":
        await add(db, n)
    await relay.run_once()
    assert bus.rounds == [3] and bus.sent == ["order.placed:a", "order.placed:b", "order.placed:c"]
    for n in "def":
        await add(db, n)
    bus.poisoned = {"e"}
    await relay.run_once()
    assert bus.rounds == [3], "the round carrying the poisoned event was refused together"
    assert bus.sent[3:] == ["order.placed:d"], "then one by one: d went, e failed and ended the round"
    async with db.sessionmaker() as session:
        rows = {r.data["n"]: r for r in (await session.scalars(select(OutboxEvent))).all()}
    assert rows["d"].published_at is not None and rows["e"].published_at is None and rows["f"].published_at is None
    assert rows["e"].attempts == 1 and "malformed" in rows["e"].last_error and rows["f"].attempts == 0
    await relay.run_once()  # e waits out its backoff; f is not held back by it
    assert bus.sent[4:] == ["order.placed:f"]


async def test_dead_letter_after_max_attempts_then_replay(db) -> None:
    bus = Recording()
    relay = OutboxRelay(db, OutboxEvent, bus, max_attempts=2)
    await add(db, "x")
    bus.refuse = True
    for _ in range(2):
        async with db.sessionmaker() as session:
            await session.execute(update(OutboxEvent).values(next_attempt_at=dt.datetime.now(dt.UTC)))
            await session.commit()
        await relay.run_once()
    async with db.sessionmaker() as session:
        row = await session.scalar(select(OutboxEvent))
    assert row.dead and row.attempts == 2 and "bus down" in row.last_error
    bus.refuse = False
    await relay.run_once()
    assert bus.sent == [], "a dead letter is kept, not retried on its own"
    assert await relay.replay_dead() == 1
    await relay.run_once()
    assert bus.sent == ["order.placed:x"]


async def test_wakes_at_once_after_a_commit_and_resumes_after_restart(db) -> None:
    bus = Recording()
    await add(db, "left-from-before")  # unpublished when the process "restarts"
    relay = OutboxRelay(db, OutboxEvent, bus, poll_interval=30)
    await relay.start()
    try:
        for _ in range(100):
            if bus.sent:
                break
            await asyncio.sleep(0.02)
        assert bus.sent == ["order.placed:left-from-before"]
        started = asyncio.get_running_loop().time()
        await add(db, "new")
        for _ in range(300):
            if len(bus.sent) == 2:
                break
            await asyncio.sleep(0.01)
        assert bus.sent[-1] == "order.placed:new"
        assert asyncio.get_running_loop().time() - started < 1.0, "woken by the commit, not the 30 s poll"
    finally:
        await relay.stop()


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    delays = [backoff(n) for n in range(1, 15)]
    assert 0.75 <= delays[0] <= 1.25 and 1.5 <= delays[1] <= 2.5
    assert all(d <= 300 * 1.25 for d in delays)
    assert len({round(backoff(3), 6) for _ in range(20)}) > 1


async def test_jetstream_drops_a_resent_duplicate() -> None:
    namespace = await nats_namespace()
    names = Names(namespace)
    publisher = NatsPublisher(NATS_URL, "test", names)
    try:
        envelope = Envelope(type="order.placed", source="orders", data={"n": "1"})
        await publisher.publish(envelope)
        await publisher.publish(envelope)  # the relay died before marking it sent, and sends again
        await publisher.publish(Envelope(type="order.placed", source="orders", data={"n": "2"}))
        info = await publisher.js.stream_info(names.stream)
        assert info.state.messages == 2
    finally:
        await publisher.aclose()
        await drop_stream(namespace)


async def test_poisoned_event_is_dead_lettered_and_replayable(db_urls) -> None:
    from services.notify.events.nats_consumer import dead_letters
    from tests.events.stack import stack

    async with stack(db_urls, "nats", max_deliver=2) as s:
        names = Names(s.apps["notify"].state.settings.event_namespace)
        publisher = NatsPublisher(NATS_URL, "test", names)
        poisoned = Envelope(type="order.placed", source="orders", data={"order_id": "not a number"})
        await publisher.publish(poisoned)
        await s.place(quantity=3)  # a good event behind it still gets through
        await s.wait_inbox(1)
        found = []
        for _ in range(100):
            found = await dead_letters(NATS_URL, names)
            if found:
                break
            await asyncio.sleep(0.2)
        assert [f["id"] for f in found] == [str(poisoned.id)]
        assert "validation error" in (found[0]["error"] or "")
        replayed = await dead_letters(NATS_URL, names, replay=True)
        assert [f["id"] for f in replayed] == [str(poisoned.id)]
        await publisher.aclose()
        assert uuid.UUID(found[0]["id"]) == poisoned.id

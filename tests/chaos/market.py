"""What the chaos tests share: a nursery with stock, buyers placing orders through the gateway, and
the stock ledger checked against both services' databases once the dust has settled."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx
from sqlalchemy import func, select

from common.db import Database
from common.errors import PROBLEM_CONTENT_TYPE
from gateway.settings import DEFAULT_RATE_LIMITS
from services.catalog.products.models import Variant
from services.catalog.reservations.models import Reservation, ReservationLine, ReservationStatus
from services.orders.orders.models import Order, OrderLine
from services.orders.outbox import OutboxEvent
from tests.catalog.helpers import BANK, SHOP
from tests.events.stack import ORDER
from tests.support.auth import auth

GROWER_ID = "grower-chaos-1"
GROWER = auth(GROWER_ID)
# Every buyer comes from 127.0.0.1: lift the per-address order limit for the load.
GATEWAY_LIMITS = {**DEFAULT_RATE_LIMITS, "order-ip": (1_000_000, 60)}


def gateway_client(url: str) -> httpx.AsyncClient:
    """The buyers' client. It drops an idle connection after 2 s, before the server's keep-alive of
    5 s runs out: with httpx's default (also 5 s) a request sent on a connection the server is closing
    at that moment fails with a ReadError that says nothing about the system under test."""
    return httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(keepalive_expiry=2.0))
INITIAL_STOCK = 100_000
# (label, retail price, quantities a buyer picks from): every order is above the shop's minimum value.
VARIANTS = [("Củ giống", 45_000, (2, 3)), ("Chậu 30 cm", 150_000, (1, 2)), ("Cây con", 60_000, (1, 2, 3))]


async def open_nursery(gw: httpx.AsyncClient) -> dict:
    """The grower's shop and one variety with three variants, through the gateway; returns the variety."""
    shop = await gw.post("/api/v1/shops", json={**SHOP, "bank": BANK}, headers=GROWER)
    assert shop.status_code == 201, shop.text
    product = await gw.post("/api/v1/products", headers=GROWER, json={
        "name": "Súng Thái đỏ", "description": "Hoa đỏ, nở ngày", "category": "water_lily", "status": "active",
        "variants": [{"label": label, "retail_price": price, "stock": INITIAL_STOCK, "min_order_quantity": 1}
                     for label, price, _ in VARIANTS]})
    assert product.status_code == 201, product.text
    return product.json()


@dataclass
class Reply:
    at: float  # seconds since the buyers started
    status: int  # 0: no reply at all (transport error)
    seconds: float
    problem: bool  # an error answered as application/problem+json
    detail: str = ""


@dataclass
class Buyers:
    """``count`` buyers, each placing orders one after the other (a new Idempotency-Key each) until stopped."""

    gw: httpx.AsyncClient
    variants: list[dict]
    count: int = 20
    placed: dict[str, dict] = field(default_factory=dict)  # code → the 201 reply
    replies: list[Reply] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = 0.0

    def now(self) -> float:
        return time.monotonic() - self.started

    async def _buyer(self, rng: random.Random) -> None:
        while not self.stop.is_set():
            index = rng.randrange(len(self.variants))
            quantity = rng.choice(VARIANTS[index][2])
            lines = [{"variant_id": self.variants[index]["id"], "quantity": quantity}]
            sent = self.now()
            try:
                resp = await self.gw.post("/api/v1/orders", json={**ORDER, "lines": lines},
                                          headers={"Idempotency-Key": uuid.uuid4().hex})
            except httpx.HTTPError as exc:
                self.replies.append(Reply(sent, 0, self.now() - sent, False, f"{type(exc).__name__}: {exc}"))
                await asyncio.sleep(0.5)
                continue
            took = self.now() - sent
            if resp.status_code == 201:
                body = resp.json()
                self.placed[body["code"]] = body
                self.replies.append(Reply(sent, 201, took, False))
            else:
                problem = resp.headers.get("content-type", "").startswith(PROBLEM_CONTENT_TYPE)
                self.replies.append(Reply(sent, resp.status_code, took, problem, resp.text[:300]))
                # A client waits a little after an error (Retry-After, at most a second, with jitter).
                try:
                    wait = min(1.0, float(resp.headers.get("retry-after", "0.3")))
                except ValueError:
                    wait = 0.3
                await asyncio.sleep(wait * rng.uniform(0.5, 1.0))

    def start(self, seed: float) -> asyncio.Future:
        self.started = time.monotonic()
        rng = random.Random(seed)
        return asyncio.gather(*(self._buyer(random.Random(rng.random())) for _ in range(self.count)))

    def statuses(self, since: float = 0.0, until: float = float("inf")) -> Counter:
        return Counter(r.status for r in self.replies if since <= r.at < until)

    def successes_since(self, since: float) -> int:
        return sum(1 for r in self.replies if r.status == 201 and r.at >= since)

    async def wait_successes(self, count: int, since: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.successes_since(since) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.successes_since(since)} orders placed in {timeout:.0f} s "
                                     f"after t={since:.1f} s: {self.statuses(since)}")
            await asyncio.sleep(0.1)

    def unclean(self) -> list[Reply]:
        """Errors that are not a problem+json reply a client can act on: a 500, no reply, or another type."""
        return [r for r in self.replies if r.status != 201 and (r.status in (0, 500) or not r.problem)]


async def listed_codes(gw: httpx.AsyncClient) -> set[str]:
    """Every order the grower sees through the gateway."""
    codes: set[str] = set()
    cursor = None
    while True:
        resp = await gw.get("/api/v1/orders", headers=GROWER,
                            params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        codes |= {o["code"] for o in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return codes


@dataclass
class Ledger:
    stock: dict[int, int]  # the catalog's stock per variant
    held: int  # reservations neither committed nor released
    committed: dict[int, int]  # quantity per variant in committed reservations
    ordered: dict[int, int]  # quantity per variant in the orders database's lines
    orders: dict[str, str]  # code → reservation_state
    half_written: list[str]  # orders without lines, with a wrong subtotal, or without their order.placed event


async def read_ledger(urls: dict[str, str]) -> Ledger:
    catalog, orders = Database(urls["catalog"], name="catalog-check"), Database(urls["orders"], name="orders-check")
    try:
        async with catalog.sessionmaker() as s:
            stock = dict((await s.execute(select(Variant.id, Variant.stock))).all())
            held = await s.scalar(select(func.count()).select_from(Reservation)
                                  .where(Reservation.status == ReservationStatus.held))
            committed = dict((await s.execute(
                select(ReservationLine.variant_id, func.sum(ReservationLine.quantity))
                .join(Reservation, Reservation.id == ReservationLine.reservation_id)
                .where(Reservation.status == ReservationStatus.committed)
                .group_by(ReservationLine.variant_id))).all())
        async with orders.sessionmaker() as s:
            rows = (await s.execute(select(Order.id, Order.code, Order.reservation_state, Order.subtotal))).all()
            lines = (await s.execute(select(OrderLine.order_id, OrderLine.variant_id, OrderLine.quantity,
                                            OrderLine.line_total))).all()
            events = (await s.execute(select(OutboxEvent.data).where(OutboxEvent.type == "order.placed"))).all()
    finally:
        await catalog.dispose()
        await orders.dispose()
    ordered: dict[int, int] = defaultdict(int)
    by_order: dict[int, list] = defaultdict(list)
    for order_id, variant_id, quantity, line_total in lines:
        ordered[variant_id] += quantity
        by_order[order_id].append(line_total)
    with_event = {data["code"] for (data,) in events}
    half = [code for order_id, code, _, subtotal in rows
            if not by_order[order_id] or sum(by_order[order_id]) != subtotal or code not in with_event]
    return Ledger(stock, held or 0, {k: int(v) for k, v in committed.items()}, dict(ordered),
                  {code: state for _, code, state, _ in rows}, half)


async def settled_ledger(urls: dict[str, str], timeout: float) -> Ledger:
    """The ledger once no reservation is held any more (the sweeper released the abandoned ones, the
    reconciler committed those of stored orders) — or as it stands after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        ledger = await read_ledger(urls)
        settled = ledger.held == 0 and all(state != "held" for state in ledger.orders.values())
        if settled or time.monotonic() > deadline:
            return ledger
        await asyncio.sleep(0.5)


def check_ledger(ledger: Ledger, variants: list[dict], placed: dict[str, dict]) -> None:
    """Every 2xx order is stored, whole; stock + reserved + sold = initial for every variant."""
    missing = sorted(set(placed) - set(ledger.orders))
    assert not missing, f"{len(missing)} orders answered 201 are not stored: {missing[:5]}"
    assert not ledger.half_written, f"half-written orders: {ledger.half_written[:5]}"
    assert ledger.held == 0, f"{ledger.held} reservations still held: the sweeper did not release them"
    states = Counter(ledger.orders.values())
    assert set(states) <= {"committed"}, f"reservation states of stored orders: {dict(states)}"
    for variant in variants:
        vid = variant["id"]
        stock, sold = ledger.stock[vid], ledger.committed.get(vid, 0)
        assert stock + sold == INITIAL_STOCK, (
            f"variant {vid}: stock {stock} + sold {sold} = {stock + sold}, not {INITIAL_STOCK}")
        assert sold == ledger.ordered.get(vid, 0), (
            f"variant {vid}: the catalog holds {sold} as sold, the orders' lines say {ledger.ordered.get(vid, 0)}")

"""Placing one order, or a checkout of several shops' orders, all reserved or none."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.auth import Principal
from common.crypto import FieldCipher
from common.errors import UnprocessableEntity
from common.worker import Worker
from services.orders.catalog_client import CatalogClient
from services.orders.orders import idempotency, service
from services.orders.orders.schemas import CheckoutCreate, OrderCreate, OrderFields


def scope_of(principal: Principal | None) -> str:
    return f"account:{principal.sub}" if principal else "guest"


async def _with_key(keys: async_sessionmaker, principal: Principal | None, key: str | None, fingerprint: str,
                    run: Callable[[int], Awaitable[tuple[int, dict]]]) -> tuple[int, dict]:
    """Claim the Idempotency-Key, run, and give the key up if anything fails."""
    row_id, replay = await idempotency.begin(keys, scope_of(principal), idempotency.check_key(key), fingerprint)
    if replay is not None:
        return replay
    try:
        return await run(row_id)
    except BaseException:
        await idempotency.abandon(keys, row_id)
        raise


async def place_order(session: AsyncSession, principal: Principal | None, data: OrderCreate | OrderFields, *,
                      source: str, shop_id: int | None = None, key: str | None, fingerprint: str,
                      keys: async_sessionmaker, catalog: CatalogClient, cipher: FieldCipher, base_url: str,
                      reconciler: Worker, buyer_mail: Worker) -> tuple[int, dict]:
    """``key`` and ``fingerprint``: the request's Idempotency-Key and what its body and path hash to;
    ``keys``: the sessions it is claimed in, at once, outside the order's transaction; ``buyer_mail``:
    the worker that hands the buyer's mail with the tracking link to notify (orders/tracking.py)."""
    role = "grower" if source == "phone" else (principal.role if principal else "guest")
    buyer = principal if source != "phone" else None

    async def run(row_id: int) -> tuple[int, dict]:
        reservation_id = service.new_reservation_id()
        reservation = await catalog.reserve(reservation_id, [ln.model_dump() for ln in data.lines], shop_id,
                                            data.payment_method)
        try:
            if source == "phone" and reservation.shop.owner_id != principal.sub:
                raise UnprocessableEntity("A phone order is for your own shop's varieties", errors=[
                    {"field": "body.lines", "message": "not your shop's varieties", "type": "not_your_shop"}])
            placed = service.build_order(reservation, data, buyer, source, cipher)
            if source == "phone":
                placed.history[0]["actor_role"] = "grower"
                placed.history[0]["actor_id"] = principal.sub
            # The saga's step 3 commits here rather than in the request's unit of work: a store that
            # fails must still release the reservation and give the Idempotency-Key up (the except
            # clause), and the reconciler is woken only for an order that is stored. The reply is
            # built once the order has its id: the key's stored reply and ours are one.
            reply = await service.store(session, [placed], key_row=row_id, autocommit=keys,
                                        reply=lambda: service.to_created(placed, base_url, role))
        except BaseException:
            await _undo(session)
            await service.release_quietly(catalog, [reservation_id])
            raise
        reconciler.wake()  # step 4, batched with other orders' (services/orders/reconciler.py)
        if placed.order["buyer_mail"]:
            buyer_mail.wake()  # the buyer's mail with the link, handed to notify after the reply
        return 201, reply

    return await _with_key(keys, principal, key, fingerprint, run)


async def _undo(session: AsyncSession) -> None:
    """Ends the failed transaction before the key is given up (on SQLite it holds the write lock)."""
    await session.rollback()


async def place_checkout(session: AsyncSession, principal: Principal | None, data: CheckoutCreate, *,
                         key: str | None, fingerprint: str, keys: async_sessionmaker, catalog: CatalogClient,
                         cipher: FieldCipher, base_url: str, reconciler: Worker,
                         buyer_mail: Worker) -> tuple[int, dict]:
    role = principal.role if principal else "guest"

    async def run(row_id: int) -> tuple[int, dict]:
        shops = await catalog.variant_shops(sorted({ln.variant_id for ln in data.lines}))
        unknown = [i for i, ln in enumerate(data.lines) if ln.variant_id not in shops]
        if unknown:
            raise UnprocessableEntity("Some lines cannot be ordered", errors=[
                {"field": f"body.lines[{i}].variant_id", "message": "no such variant on sale",
                 "type": "unknown_variant"} for i in unknown])
        by_shop: dict[int, list] = defaultdict(list)
        for line in data.lines:
            by_shop[shops[line.variant_id]].append(line)
        checkout_id = uuid.uuid4().hex
        reserved: list[str] = []
        try:
            placed = []
            for shop_id, lines in sorted(by_shop.items()):
                reservation_id = service.new_reservation_id()
                reservation = await catalog.reserve(reservation_id, [ln.model_dump() for ln in lines], shop_id,
                                                    data.payment_method)
                reserved.append(reservation_id)
                part = OrderFields(**{**data.model_dump(exclude={"lines"}), "lines": [ln.model_dump() for ln in lines]})
                item = service.build_order(reservation, part, principal, "web", cipher, checkout_id)
                placed.append(item)

            def checkout_reply() -> dict:
                orders = [service.to_created(p, base_url, role) for p in placed]
                return {"checkout_id": checkout_id, "orders": orders, "total": sum(o["total"] for o in orders)}

            reply = await service.store(session, placed, key_row=row_id, autocommit=keys, reply=checkout_reply)
        except BaseException:
            await _undo(session)
            await service.release_quietly(catalog, reserved)
            raise
        reconciler.wake()
        if any(p.order["buyer_mail"] for p in placed):
            buyer_mail.wake()  # one mail per order, each with its own link
        return 201, reply

    return await _with_key(keys, principal, key, fingerprint, run)

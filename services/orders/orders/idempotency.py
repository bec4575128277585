"""Idempotency-Key for creating orders, as the IETF httpapi draft describes it.

- No key → 400. A key longer than 255 characters → 400.
- The first request with a key records it as in flight (one statement, committed at once, so that a
  second request with the same key sees it at once) → a concurrent duplicate gets 409.
- The order's own transaction marks the key completed and stores the reply with it, so a stored
  order and its key are one fact. A retry with the same key and the same body gets that reply again;
  with another body, 422.
- A request that fails (any error) deletes its key: the client may retry with the same key.
- Keys are scoped to the caller (the account, or "guest") and kept 24 hours (a worker purges the
  expired ones every ``PURGE_EVERY``; a key found expired before then is treated as new anyway). A
  key left in flight by a crashed process is taken over after ``STALE_AFTER``.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from common.db import Database
from common.errors import Conflict, Problem, UnprocessableEntity
from services.orders.orders.models import IdempotencyKey, utcnow

KEEP_FOR = dt.timedelta(hours=24)
STALE_AFTER = dt.timedelta(seconds=60)
PURGE_EVERY = 60.0  # seconds between deletes of expired keys (a scan of the table), not one per order


class MissingKey(Problem):
    status, slug, title = 400, "idempotency-key-missing", "Idempotency-Key header required"


class KeyInFlight(Conflict):
    slug, title = "idempotency-key-in-flight", "A request with this Idempotency-Key is still being processed"


class KeyReused(UnprocessableEntity):
    slug, title = "idempotency-key-reused", "This Idempotency-Key was used with another request body"


def fingerprint(path: str, body: bytes) -> str:
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        canonical = body
    return hashlib.sha256(path.encode() + b"\n" + canonical).hexdigest()


def check_key(key: str | None) -> str:
    if not key or not key.strip():
        raise MissingKey("Send an Idempotency-Key header (a random UUID per order) so retries are safe")
    key = key.strip()
    if len(key) > 255 or any(ord(c) < 0x20 for c in key):
        raise MissingKey("The Idempotency-Key must be at most 255 printable characters")
    return key


async def begin(sessions: async_sessionmaker, scope: str, key: str,
                print_: str) -> tuple[int | None, tuple[int, dict] | None]:
    """Claim the key. Returns (row id, None) to go ahead, or (None, (status, body)) to replay."""
    async with sessions() as session:
        try:
            row_id = await session.scalar(_CLAIM, {"scope": scope, "key": key, "fingerprint": print_,
                                                   "state": "in_flight", "created_at": utcnow()})
            await session.commit()
            return row_id, None
        except IntegrityError:
            await session.rollback()
        existing = await session.scalar(select(IdempotencyKey).where(IdempotencyKey.scope == scope,
                                                                     IdempotencyKey.key == key))
        if existing is None:  # it was deleted between our insert and our read: the first try failed
            raise KeyInFlight("Retry in a moment")
        if utcnow() - existing.created_at > KEEP_FOR:  # expired, not yet purged: the key is new again
            existing.fingerprint, existing.state, existing.created_at = print_, "in_flight", utcnow()
            existing.response_status = existing.response_body = None
            await session.commit()
            return existing.id, None
        if existing.fingerprint != print_:
            raise KeyReused()
        if existing.state == "completed":
            return None, (existing.response_status or 201, existing.response_body or {})
        if utcnow() - existing.created_at > STALE_AFTER:
            existing.created_at = utcnow()
            await session.commit()
            return existing.id, None
        raise KeyInFlight(headers={"Retry-After": "1"})


async def purge(db: Database) -> None:
    """Forget the keys older than ``KEEP_FOR`` (a worker's round)."""
    async with db.sessionmaker() as session:
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEEP_FOR))
        await session.commit()


async def complete(session: AsyncSession, row_id: int, status: int, body: dict) -> None:
    """Inside the order's transaction: the key now stands for this reply."""
    await session.execute(COMPLETE, completed(row_id, status, body))


def completed(row_id: int, status: int, body: dict) -> dict:
    """The parameters of ``COMPLETE``: key ``row_id`` stands for this reply from now on."""
    return {"row_id": row_id, "key_state": "completed", "key_status": status, "key_body": body}


# Built once; Core statements on the table (the ORM's bulk paths cost more than the statement here).
_keys = IdempotencyKey.__table__
_CLAIM = insert(_keys).returning(_keys.c.id)
# Public: on PostgreSQL the order's rows ride on it as CTEs, so that one statement stores them all
# (services/orders/orders/service.py). Its parameters are named apart from those of the rows.
COMPLETE = (update(_keys).where(_keys.c.id == bindparam("row_id"))
            .values(state=bindparam("key_state"), response_status=bindparam("key_status"),
                    response_body=bindparam("key_body", type_=_keys.c.response_body.type)))


async def abandon(sessions: async_sessionmaker, row_id: int) -> None:
    async with sessions() as session:
        await session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id,
                                                           IdempotencyKey.state == "in_flight"))
        await session.commit()

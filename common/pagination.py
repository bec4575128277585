"""Cursor pagination: opaque, typed cursors, ``limit`` ≤ 100, replies as ``{items, next_cursor}``.

A cursor is a :class:`Cursor` model (the keyset position of a page's last item), sent as base64url
of its JSON. Every cursor a client hands back is validated against the model of its list before it
reaches a query: a cursor made by hand, or one of another list, is a 422 (``query.cursor``), never a
500. Ids in cursors are bounded like ids in paths, so no value can overflow a database integer.

Every list pages with :func:`keyset_page` (newest first or oldest first by id) or, when its order has
more keys than the id (search, price sorts), reads its own rows and shapes the reply with
:func:`next_page`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, Self, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import UnprocessableEntity
from common.params import MAX_ID

T = TypeVar("T")
R = TypeVar("R")

MAX_LIMIT = 100
MAX_CURSOR_LENGTH = 512

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1–100)")]
CursorQuery = Annotated[str | None, Query(max_length=MAX_CURSOR_LENGTH,
                                          description="`next_cursor` of the previous page")]
CursorId = Annotated[int, Field(ge=0, le=MAX_ID, strict=True)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Send it as `cursor` for the next page; null on the last")


def bad_cursor(message: str = "not a cursor this list gave out") -> UnprocessableEntity:
    return UnprocessableEntity("The cursor is not one this API gave out",
                               errors=[{"field": "query.cursor", "message": message, "type": "cursor_invalid"}])


class Cursor(BaseModel):
    """Where a page ended. Subclasses name the keys of their list's order; unknown keys, other
    types (``true`` for an id, a float for an integer) and out-of-range values are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    def encode(self) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(self.model_dump(exclude_none=True))).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str | None) -> Self | None:
        """The cursor a client sent, checked; ``None`` for the first page."""
        if not token:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise bad_cursor("invalid cursor") from None
        try:
            return cls.model_validate_json(raw)  # JSON, strictly: `true` is no id, `1e30` no integer
        except ValidationError:
            raise bad_cursor() from None


class IdCursor(Cursor):
    """Lists in id order: the last id shown."""

    id: CursorId


def next_page(rows: Sequence[R], limit: int, position: Callable[[R], Cursor]) -> tuple[list[R], str | None]:
    """``rows`` read with ``limit + 1``: the page, and the cursor of its last item when more follow."""
    if len(rows) > limit:
        return list(rows[:limit]), position(rows[limit - 1]).encode()
    return list(rows), None


async def keyset_page(session: AsyncSession, stmt: Select, id_column: Any, limit: int, cursor: str | None,
                      *, newest_first: bool = True) -> tuple[list[Any], str | None]:
    """A page of ``stmt``'s rows ordered by ``id_column`` (newest first unless told otherwise)."""
    after = IdCursor.decode(cursor)
    if after is not None:
        stmt = stmt.where(id_column < after.id if newest_first else id_column > after.id)
    stmt = stmt.order_by(id_column.desc() if newest_first else id_column).limit(limit + 1)
    rows = (await session.scalars(stmt)).all()
    return next_page(rows, limit, lambda row: IdCursor(id=row.id))

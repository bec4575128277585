"""Cursor pagination: opaque cursors, ``limit`` ≤ 100, replies as ``{items, next_cursor}``."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel

from common.errors import UnprocessableEntity

T = TypeVar("T")

MAX_LIMIT = 100

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1–100)")]
CursorQuery = Annotated[str | None, Query(max_length=512, description="`next_cursor` of the previous page")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(values: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        raise UnprocessableEntity("The cursor is not one this API gave out",
                                  errors=[{"field": "query.cursor", "message": "invalid cursor",
                                           "type": "cursor_invalid"}]) from None
    if not isinstance(value, dict):
        raise UnprocessableEntity("The cursor is not one this API gave out")
    return value

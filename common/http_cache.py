"""Conditional GETs for public reads: a weak ETag from the body, Cache-Control, 304 on a match.

Anonymous replies may be kept by browsers and shared caches for a minute (``public, max-age=60``);
replies to a signed-in caller can differ (an owner sees drafts), so they are ``private, no-cache``:
kept only by that caller's browser and revalidated every time, which the ETag makes cheap.
``Vary: Authorization`` keeps a shared cache from handing the anonymous copy to a signed-in caller.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

PUBLIC_MAX_AGE = 60


def weak_etag(body: bytes) -> str:
    return f'W/"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: weak comparison against a list of tags, or ``*``."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))


def cached_json(request: Request, content: BaseModel | Any, *, private: bool,
                max_age: int = PUBLIC_MAX_AGE) -> Response:
    """``content`` as JSON (as FastAPI would write it) with an ETag, or a bodiless 304 when the
    caller's ``If-None-Match`` names it."""
    body = json_body(content)
    return json_reply(request, body, weak_etag(body), private=private, max_age=max_age)


def json_body(content: BaseModel | Any) -> bytes:
    """``content`` as the JSON FastAPI would write for it."""
    return orjson.dumps(content.model_dump(mode="json") if isinstance(content, BaseModel) else content)


def json_reply(request: Request, body: bytes, etag: str, *, private: bool, max_age: int = PUBLIC_MAX_AGE) -> Response:
    """A JSON ``body`` already made, with its ``etag``: the reply :func:`cached_json` gives."""
    headers = {
        "ETag": etag,
        "Cache-Control": "private, no-cache" if private else f"public, max-age={max_age}",
        "Vary": "Authorization",
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)

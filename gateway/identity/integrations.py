"""Integrators' API keys on proxied requests.

A key arrives as ``X-API-Key`` or ``Authorization: Bearer cvk_…``. The gateway checks it on every
request (a revoked key stops at once), counts it against the key's rate limit, and swaps it for a
short-lived access token carrying the owner's id, role and the key's scopes, which the services
verify like any other token. The key itself never reaches a service.
"""

from __future__ import annotations

import time

from starlette.requests import Request

from common.auth import bearer_token
from common.errors import Unauthorized
from gateway import deps
from gateway.identity import service
from gateway.identity.tokens import API_KEY_PREFIX

LAST_USE_WRITE_EVERY = 60.0  # seconds: last use is recorded at most this often per key


def presented_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    token = bearer_token(request)
    if token and token.startswith(API_KEY_PREFIX):
        return token
    return None


async def integration_headers(request: Request) -> list[tuple[str, str]]:
    """Headers that replace an API key on the way upstream; [] when the caller sent none."""
    key = presented_key(request)
    if key is None:
        return []
    db, settings = deps.database(request), deps.settings(request)
    async with db.sessionmaker() as session:
        found = await service.resolve_api_key(session, key)
    if found is None:
        raise Unauthorized("The API key is not valid or has been revoked",
                           headers={"WWW-Authenticate": 'Bearer realm="cho-vuon", error="invalid_token"'})
    row, account = found
    await deps.limits(request).check("api-key", row.prefix)
    last_writes = deps.api_key_last_writes(request)
    now = time.monotonic()
    if now - last_writes.get(row.id, 0.0) >= LAST_USE_WRITE_EVERY:
        last_writes[row.id] = now
        async with db.unit_of_work(writer=True) as session:
            await service.record_key_use(session, row.id)
    token = deps.signer(request).access_token(sub=account.id, role=account.role, kind="api_key",
                                              scopes=list(row.scopes), ttl=settings.api_key_token_ttl)
    return [("authorization", f"Bearer {token}")]

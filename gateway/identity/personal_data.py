"""A user's own data: everything held about them (export), and erasure on request.

Each service holds part of it and answers on ``/internal/accounts/{id}`` (export with GET, erase
with DELETE) to a service credential. Erasure asks every service first — each step is idempotent —
and deletes the account last, so a service that is down leaves the account in place to try again.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import ServiceUnavailable
from common.logging import request_id_var
from gateway.identity import service
from gateway.identity.schemas import AccountPublic, ApiKeyPublic

if TYPE_CHECKING:
    from gateway.proxy import Upstreams
    from gateway.settings import GatewaySettings


async def _ask(upstreams: Upstreams, settings: GatewaySettings, method: str, path: str) -> dict:
    headers = {"X-Service-Token": settings.service_token.get_secret_value(),
               "X-Request-ID": request_id_var.get() or ""}

    async def one(name: str, client: httpx.AsyncClient) -> tuple[str, dict]:
        try:
            resp = await client.request(method, path, headers=headers)
        except httpx.HTTPError:
            raise ServiceUnavailable(f"The {name} service is unavailable; try again shortly",
                                     service=name) from None
        if resp.status_code >= 300:
            raise ServiceUnavailable(f"The {name} service could not answer ({resp.status_code})", service=name)
        return name, resp.json()

    return dict(await asyncio.gather(*(one(n, c) for n, c in upstreams.clients.items())))


async def export(session: AsyncSession, account_id: str, *, upstreams: Upstreams,
                 settings: GatewaySettings) -> dict:
    account = await service.get_account(session, account_id)
    held = await _ask(upstreams, settings, "GET", f"/internal/accounts/{account_id}/export")
    keys = await service.list_api_keys(session, account_id, 100, None)
    return {
        "account": {**AccountPublic.model_validate(account, from_attributes=True).model_dump(mode="json"),
                    "locked": account.locked},
        "api_keys": [ApiKeyPublic.model_validate(k, from_attributes=True).model_dump(mode="json") for k in keys[0]],
        **held,
    }


async def erase(session: AsyncSession, account_id: str, *, upstreams: Upstreams, settings: GatewaySettings) -> dict:
    account = await service.get_account(session, account_id)
    done = await _ask(upstreams, settings, "DELETE", f"/internal/accounts/{account_id}")
    await session.delete(account)
    return done

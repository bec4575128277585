"""The orders service's one pooled client to the catalog's internal API."""

from __future__ import annotations

import logging

import httpx

from common.errors import Problem, ServiceUnavailable
from common.logging import request_id_var

log = logging.getLogger("orders.catalog")


class CatalogUnavailable(ServiceUnavailable):
    def __init__(self, detail: str = "The catalog is unavailable; nothing was ordered. Try again shortly.") -> None:
        super().__init__(detail, headers={"Retry-After": "2"}, service="catalog")


class CatalogRefused(Problem):
    """The catalog said no (out of stock, unknown variant…): its problem is passed on as it is."""

    def __init__(self, status: int, body: dict) -> None:
        super().__init__(body.get("detail"))
        self.status = status
        self.slug = body.get("type", "/problems/conflict").rsplit("/", 1)[-1]
        self.title = body.get("title", "Refused")
        self.extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "request_id")}


class CatalogClient:
    def __init__(self, base_url: str, service_token: str, timeout: float = 5.0) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout, connect=2.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
            headers={"X-Service-Token": service_token})

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _post(self, path: str, json: dict | None = None) -> dict:
        headers = {"X-Request-ID": request_id_var.get() or ""}
        try:
            resp = await self.client.post(path, json=json, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("catalog call %s failed: %s", path, exc)
            raise CatalogUnavailable() from None
        if resp.status_code >= 500:
            log.warning("catalog call %s answered %s", path, resp.status_code)
            raise CatalogUnavailable()
        if resp.status_code >= 400:
            raise CatalogRefused(resp.status_code, resp.json())
        return resp.json()

    async def reserve(self, reservation_id: str, lines: list[dict], shop_id: int | None) -> dict:
        return await self._post("/internal/reservations", {"id": reservation_id, "lines": lines, "shop_id": shop_id})

    async def commit(self, reservation_id: str) -> dict:
        return await self._post(f"/internal/reservations/{reservation_id}/commit")

    async def release(self, reservation_id: str) -> dict:
        return await self._post(f"/internal/reservations/{reservation_id}/release")

    async def variant_shops(self, variant_ids: list[int]) -> dict[int, int]:
        body = await self._post("/internal/variants/shops", {"variant_ids": variant_ids})
        return {int(k): v for k, v in body["shops"].items()}

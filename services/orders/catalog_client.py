"""The orders service's one pooled client to the catalog's internal API."""

from __future__ import annotations

import logging
from typing import Literal

import httpx
import orjson
from pydantic import BaseModel, ValidationError

from common.errors import Problem, ServiceUnavailable
from common.logging import request_id_var
from common.reservations import PaymentMethod, ReservationOut
from common.transport import ServiceClient

log = logging.getLogger("orders.catalog")

# The catalog's answers that are about the order itself (unknown variant, out of stock, a reservation
# closed or gone); any other 4xx means the call is wrong (a credential, a limit) and is not the buyer's.
REFUSALS = frozenset({404, 409, 410, 422})


class CatalogUnavailable(ServiceUnavailable):
    def __init__(self, detail: str = "The catalog is unavailable; nothing was ordered. Try again shortly.") -> None:
        super().__init__(detail, headers={"Retry-After": "2"}, service="catalog")


class CatalogRefused(Problem):
    """The catalog said no (out of stock, unknown variant…): its problem is passed on as it is."""

    def __init__(self, status: int, body: dict) -> None:
        kind, title, detail = body.get("type"), body.get("title"), body.get("detail")
        super().__init__(detail if isinstance(detail, str) else None)
        self.status = status
        self.slug = kind.rsplit("/", 1)[-1] if isinstance(kind, str) else "conflict"
        self.title = title if isinstance(title, str) else "Refused"
        self.extra = {k: v for k, v in body.items() if k not in ("type", "title", "status", "detail", "request_id")}


class CommitReply(BaseModel):
    statuses: dict[str, Literal["committed", "released"]]


class CatalogClient:
    def __init__(self, base_url: str, service_token: str, timeout: float = 5.0) -> None:
        # Every call is idempotent at the catalog: a reservation by the id the orders service chose, a
        # commit or a release of one already committed or released answers its status again.
        self.client = ServiceClient(base_url, timeout=httpx.Timeout(timeout, connect=2.0),
                                    headers={"X-Service-Token": service_token}, idempotent=True)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _post(self, path: str, json: dict | None = None) -> dict:
        headers = {"X-Request-ID": request_id_var.get() or ""}
        try:
            resp = await self.client.post(path, orjson.dumps(json) if json is not None else b"", headers)
        except httpx.HTTPError as exc:
            log.warning("catalog call %s failed: %s", path, exc)
            raise CatalogUnavailable() from None
        if resp.status_code >= 500:
            log.warning("catalog call %s answered %s", path, resp.status_code)
            raise CatalogUnavailable()
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or (resp.status_code >= 400 and resp.status_code not in REFUSALS):
            log.warning("catalog call %s answered %s with %s", path, resp.status_code,
                        "a refusal not about the order" if isinstance(body, dict) else "a body that is not JSON")
            raise CatalogUnavailable()
        if resp.status_code >= 400:
            raise CatalogRefused(resp.status_code, body)
        return body

    async def reserve(self, reservation_id: str, lines: list[dict], shop_id: int | None,
                      payment_method: PaymentMethod) -> ReservationOut:
        """The reservation, its authoritative prices and the shop's terms (its bank account only for a
        bank transfer), checked before they are used: a reply of another shape (or for another
        reservation) is the catalog being unavailable."""
        body = await self._post("/internal/reservations", {"id": reservation_id, "lines": lines, "shop_id": shop_id,
                                                           "payment_method": payment_method})
        try:
            reply = ReservationOut.model_validate(body)
        except ValidationError as exc:
            log.warning("catalog reservation reply not understood: %s", exc.errors(include_input=False)[:3])
            raise CatalogUnavailable() from None
        if reply.id != reservation_id:
            log.warning("catalog answered reservation %s for %s", reply.id, reservation_id)
            raise CatalogUnavailable()
        return reply

    async def commit_many(self, reservation_ids: list[str]) -> dict[str, str]:
        """Commit these reservations in one call. Each one's status afterwards: ``committed`` or
        ``released`` (too late); ``unknown`` for one the catalog has never heard of."""
        body = await self._post("/internal/reservations/commit", {"ids": reservation_ids})
        try:
            reply = CommitReply.model_validate(body)
        except ValidationError as exc:
            log.warning("catalog commit reply not understood: %s", exc.errors(include_input=False)[:3])
            raise CatalogUnavailable() from None
        return {rid: reply.statuses.get(rid, "unknown") for rid in reservation_ids}

    async def release(self, reservation_id: str) -> dict:
        return await self._post(f"/internal/reservations/{reservation_id}/release")

    async def variant_shops(self, variant_ids: list[int]) -> dict[int, int]:
        body = await self._post("/internal/variants/shops", {"variant_ids": variant_ids})
        try:
            return {int(k): int(v) for k, v in body["shops"].items()}
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("catalog variant-shops reply not understood")
            raise CatalogUnavailable() from None

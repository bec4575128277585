"""Orders service. Follow the routers below to any behaviour."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from common.service import create_service_app
from services.orders.settings import OrdersSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()
    return create_service_app(
        settings,
        title="Chợ Vườn orders",
        description="Orders, the reservation saga, idempotency, the order state machine, payments.",
        routers=[],
        migrations=MIGRATIONS,
    )

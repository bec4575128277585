"""Orders service. Follow the routers below to any behaviour."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from common.crypto import FieldCipher
from common.relay import outbox_metrics, start_relay
from common.service import create_service_app
from common.worker import Worker
from services.orders import reconciler
from services.orders.accounts import router as accounts_router
from services.orders.catalog_client import CatalogClient
from services.orders.desk.endpoints import router as desk_router
from services.orders.orders import idempotency, tracking
from services.orders.orders.endpoints import router as orders_router
from services.orders.orders.metrics import order_metrics
from services.orders.outbox import OutboxEvent
from services.orders.payments.endpoints import router as payments_router
from services.orders.settings import OrdersSettings
from services.orders.shipments.endpoints import router as shipments_router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: OrdersSettings | None = None) -> FastAPI:
    settings = settings or OrdersSettings()

    async def start(app: FastAPI) -> None:
        app.state.catalog = CatalogClient(settings.catalog_url, settings.service_token.get_secret_value(),
                                          settings.catalog_timeout)
        await reconciler.start(app)
        await tracking.start(app)
        app.state.idempotency_purge = Worker("idempotency purge", partial(idempotency.purge, app.state.db),
                                             interval=idempotency.PURGE_EVERY)
        await app.state.idempotency_purge.start()
        await start_relay(app, OutboxEvent)

    async def stop(app: FastAPI) -> None:
        await app.state.relay.stop()
        await app.state.idempotency_purge.stop()
        await tracking.stop(app)
        await reconciler.stop(app)
        await app.state.catalog.aclose()

    app = create_service_app(
        settings,
        title="Chợ Vườn orders",
        description="Orders, the reservation saga, idempotency, the order state machine, payments.",
        # Static paths (/orders/export.csv, /orders/packing-list) before /orders/{order_id}.
        routers=[accounts_router, desk_router, payments_router, orders_router, shipments_router],
        migrations=MIGRATIONS,
        metrics=[outbox_metrics, order_metrics],
        on_startup=[start],
        on_shutdown=[stop],
    )
    app.state.cipher = FieldCipher(settings.data_key.get_secret_value())
    return app

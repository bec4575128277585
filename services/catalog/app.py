"""Catalog service: shops, varieties and variants, stock. Follow the routers below to any behaviour."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from common.crypto import FieldCipher
from common.relay import outbox_metrics, start_relay
from common.service import create_service_app
from services.catalog.accounts import router as accounts_router
from services.catalog.listings import ChangeListener, ListingCache, kept_routes
from services.catalog.outbox import OutboxEvent
from services.catalog.photos.endpoints import media_router
from services.catalog.photos.endpoints import router as photos_router
from services.catalog.products.endpoints import router as products_router
from services.catalog.reservations import sweeper
from services.catalog.reservations.endpoints import router as reservations_router
from services.catalog.reservations.endpoints import variants_router
from services.catalog.reservations.metrics import reservation_metrics
from services.catalog.settings import CatalogSettings
from services.catalog.shops.endpoints import router as shops_router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()

    async def stop_relay(app: FastAPI) -> None:
        await app.state.relay.stop()

    async def start_listings(app: FastAPI) -> None:
        if app.state.listing_listener is not None:
            await app.state.listing_listener.start()

    async def stop_listings(app: FastAPI) -> None:
        if app.state.listing_listener is not None:
            await app.state.listing_listener.stop()

    app = create_service_app(
        settings,
        title="Chợ Vườn catalog",
        description="Shops, varieties (products), variants with retail and wholesale prices, stock.",
        routers=[accounts_router, shops_router, products_router, reservations_router, variants_router,
                 photos_router, media_router],
        migrations=MIGRATIONS,
        metrics=[outbox_metrics, reservation_metrics],
        on_startup=[start_listings, sweeper.start, partial(start_relay, model=OutboxEvent)],
        on_shutdown=[stop_relay, sweeper.stop, stop_listings],
    )
    app.state.cipher = FieldCipher(settings.data_key.get_secret_value())
    # Anonymous listings and product pages kept until what they show changes (services/catalog/listings.py).
    # On PostgreSQL only while the change listener is connected; never behind PgBouncer (it does not carry LISTEN).
    engine = app.state.db.engine
    app.state.listings = ListingCache(enabled=settings.listing_cache and engine.dialect.name == "sqlite")
    app.state.listings.watch(engine)
    listen = settings.listing_cache and engine.dialect.name == "postgresql" and not settings.db_pgbouncer
    app.state.listing_listener = ChangeListener(engine, app.state.listings) if listen else None
    app.router.routes[:0] = kept_routes(app.state.listings)
    return app

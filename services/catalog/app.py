"""Catalog service: shops, varieties and variants, stock. Follow the routers below to any behaviour."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from common.crypto import FieldCipher
from common.service import create_service_app
from services.catalog.products.endpoints import router as products_router
from services.catalog.reservations import sweeper
from services.catalog.reservations.endpoints import router as reservations_router
from services.catalog.settings import CatalogSettings
from services.catalog.shops.endpoints import router as shops_router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()
    app = create_service_app(
        settings,
        title="Chợ Vườn catalog",
        description="Shops, varieties (products), variants with retail and wholesale prices, stock.",
        routers=[shops_router, products_router, reservations_router],
        migrations=MIGRATIONS,
        on_startup=[sweeper.start],
        on_shutdown=[sweeper.stop],
    )
    app.state.cipher = FieldCipher(settings.data_key.get_secret_value())
    return app

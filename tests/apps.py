"""Building each app for a test, on the test's databases."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from services.catalog.app import create_app as create_catalog
from services.catalog.settings import CatalogSettings
from services.notify.app import create_app as create_notify
from services.notify.settings import NotifySettings
from services.orders.app import create_app as create_orders
from services.orders.settings import OrdersSettings

FACTORIES = {
    "gateway": (create_gateway, GatewaySettings),
    "catalog": (create_catalog, CatalogSettings),
    "orders": (create_orders, OrdersSettings),
    "notify": (create_notify, NotifySettings),
}


def make_app(name: str, db_urls: dict[str, str], **settings) -> FastAPI:
    factory, settings_cls = FACTORIES[name]
    return factory(settings_cls(database_url=db_urls[name], **settings))

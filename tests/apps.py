"""Building each app for a test, on the test's databases, with the test's signing key."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from common.keys import private_key_text, public_key_text
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

SIGNING_KEY = Ed25519PrivateKey.generate()
PRIVATE_KEY = private_key_text(SIGNING_KEY)
PUBLIC_KEY = public_key_text(SIGNING_KEY.public_key())


def make_app(name: str, db_urls: dict[str, str], **settings) -> FastAPI:
    factory, settings_cls = FACTORIES[name]
    settings.setdefault("jwt_public_key", PUBLIC_KEY)
    if name == "gateway":
        settings.setdefault("jwt_private_key", PRIVATE_KEY)
    if name in ("catalog", "orders"):
        # No event relay unless a test wires one to its own notify: nothing leaks to a real :8003.
        settings.setdefault("relay_poll_interval", 0)
    if name == "orders":
        # Nor the buyers' mail (orders/tracking.py): a closed port unless the test runs its own notify.
        settings.setdefault("notify_url", "http://127.0.0.1:9")
    return factory(settings_cls(database_url=db_urls[name], **settings))

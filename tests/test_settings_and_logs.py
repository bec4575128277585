"""Settings refuse insecure secrets outside development; logs are structured and carry context."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import SecretStr, ValidationError

from common.logging import configure_logging
from gateway.settings import GatewaySettings
from services.catalog.settings import CatalogSettings
from services.notify.settings import NotifySettings
from services.orders.settings import OrdersSettings
from tests.apps import PRIVATE_KEY, PUBLIC_KEY, make_app
from tests.conftest import asgi_client

ALL = [GatewaySettings, CatalogSettings, OrdersSettings, NotifySettings]
PREFIX = {GatewaySettings: "GATEWAY_", CatalogSettings: "CATALOG_", OrdersSettings: "ORDERS_",
          NotifySettings: "NOTIFY_"}


@pytest.mark.parametrize("cls", ALL)
def test_each_app_reads_its_own_prefix(cls, monkeypatch) -> None:
    monkeypatch.setenv(f"{PREFIX[cls]}PORT", "9123")
    assert cls().port == 9123
    for other in ALL:
        if other is not cls:
            assert other().port != 9123


@pytest.mark.parametrize("cls", ALL)
def test_insecure_defaults_refused_outside_development(cls, monkeypatch) -> None:
    assert cls().environment == "development"  # the shipped defaults work for `make run`
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="JWT_PUBLIC_KEY"):
        cls()
    monkeypatch.setenv("JWT_PUBLIC_KEY", PUBLIC_KEY)
    secrets = [name for name, info in cls.model_fields.items() if info.annotation is SecretStr]
    assert "service_token" in secrets
    with pytest.raises(ValidationError) as refused:
        cls()
    assert cls.env_name("service_token") == "SERVICE_TOKEN"  # one value shared by every app
    for name in secrets:
        assert cls.env_name(name) in str(refused.value)
    for name in secrets:
        monkeypatch.setenv(cls.env_name(name), "short")
    with pytest.raises(ValidationError):
        cls()
    for name in secrets:
        value = PRIVATE_KEY if name == "jwt_private_key" else "k" * 40
        monkeypatch.setenv(cls.env_name(name), value)
    assert cls().environment == "production"


def test_shared_settings_are_unprefixed(monkeypatch) -> None:
    monkeypatch.setenv("EVENT_BUS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("SMTP_URL", "smtp://127.0.0.1:1025")
    assert OrdersSettings().event_bus_url == "nats://127.0.0.1:4222"
    assert NotifySettings().smtp_url == "smtp://127.0.0.1:1025"


def test_routes_come_from_configuration(monkeypatch) -> None:
    monkeypatch.setenv("GATEWAY_ROUTES", '{"/api/v1/plants": "catalog"}')
    assert GatewaySettings().routes == {"/api/v1/plants": "catalog"}


async def test_json_logs_carry_service_request_id_and_route(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LOG_FORMAT", "json")
    app = make_app("catalog", {"catalog": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"})
    try:
        async with asgi_client(app) as client:
            await client.get("/api/v1/products/7", headers={"X-Request-ID": "json-log-1"})
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        configure_logging("tests", "text")
    access = [e for e in lines if e["request_id"] == "json-log-1"]
    assert access, lines
    assert access[-1]["service"] == "catalog"
    assert access[-1]["route"] == "/api/v1/products/{product_id}"
    assert access[-1]["status"] == 404
    assert {"ts", "level", "msg"} <= access[-1].keys()


def test_text_logs_are_readable(capsys) -> None:
    configure_logging("orders", "text")
    logging.getLogger("orders.test").warning("stock is low", extra={"variant_id": 4})
    err = capsys.readouterr().err
    assert "WARNING" in err and "orders" in err and "stock is low" in err and "variant_id=4" in err

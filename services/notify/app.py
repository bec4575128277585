"""Notify service. Follow the routers below to any behaviour."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from common.service import create_service_app
from services.notify.settings import NotifySettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    return create_service_app(
        settings,
        title="Chợ Vườn notify",
        description="The grower's inbox, email and webhooks, fed by order and stock events.",
        routers=[],
        migrations=MIGRATIONS,
    )

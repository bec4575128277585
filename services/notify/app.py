"""Notify service: events in (HTTP push or NATS JetStream), the inbox with its live stream out.
Follow the routers and the effects below to any behaviour."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI

from common.service import create_service_app, on_stop_signal
from services.notify import metrics
from services.notify.accounts import router as accounts_router
from services.notify.events import nats_consumer
from services.notify.events.endpoints import router as events_router
from services.notify.inbox.broadcast import Broadcaster, NatsBroadcaster
from services.notify.inbox.endpoints import router as inbox_router
from services.notify.mail import sender as mail
from services.notify.mail.endpoints import router as mail_router
from services.notify.preferences.endpoints import router as preferences_router
from services.notify.push import sender as push
from services.notify.push.endpoints import router as push_router
from services.notify.settings import NotifySettings
from services.notify.webhooks import described
from services.notify.webhooks import sender as webhooks
from services.notify.webhooks.endpoints import router as webhooks_router

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()

    async def start(app: FastAPI) -> None:
        app.state.broadcaster = (NatsBroadcaster(settings.event_bus_url, settings.event_namespace)
                                 if settings.uses_nats else Broadcaster())
        await app.state.broadcaster.start()
        app.state.restore_signals = on_stop_signal(app.state.broadcaster.close_streams)
        app.state.effects = []  # mail and webhooks add theirs: queue work in the event's transaction
        app.state.nats_ready = asyncio.Event()
        app.state.consumer = None
        if settings.uses_nats:
            app.state.consumer = asyncio.create_task(nats_consumer.run(
                app, settings.event_bus_url, settings.event_names(), settings.max_deliver,
                in_flight=settings.events_in_flight))
        await mail.start(app)

    async def stop(app: FastAPI) -> None:
        app.state.restore_signals()
        if app.state.consumer is not None:
            app.state.consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await app.state.consumer
        await mail.stop(app)
        await app.state.broadcaster.stop()

    return create_service_app(
        settings,
        title="Chợ Vườn notify",
        description="The grower's inbox (live), email and webhooks, fed by order and stock events.",
        routers=[accounts_router, preferences_router, inbox_router, events_router, webhooks_router, mail_router,
                 push_router],
        webhooks=described.router,
        migrations=MIGRATIONS,
        metrics=[metrics.queue_metrics, metrics.nats_metrics],
        on_startup=[start, webhooks.start, push.start],
        on_shutdown=[push.stop, webhooks.stop, stop, metrics.stop],
    )

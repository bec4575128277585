"""What the notify service's routes take, as ``Annotated`` dependencies.

The providers below are the only code that reads ``request.app.state`` (what ``app.py`` and the
workers' start hooks built); routes declare the aliases, and the domain functions get plain arguments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.auth import CurrentPrincipal, Principal, require
from common.crypto import FieldCipher
from common.db import Database, SessionDep
from common.worker import Worker
from services.notify.events.handler import Effect
from services.notify.inbox.broadcast import Broadcaster
from services.notify.settings import NotifySettings

__all__ = ["BroadcasterDep", "CurrentPrincipal", "DatabaseDep", "EffectsDep", "Grower", "PushKeyDep",
           "SessionDep", "SettingsDep", "WebhookCipherDep", "WebhookOwner", "WebhookSenderDep"]


def settings(request: Request) -> NotifySettings:
    return request.app.state.settings


def database(request: Request) -> Database:
    return request.app.state.db


def broadcaster(request: Request) -> Broadcaster:
    return request.app.state.broadcaster


def effects(request: Request) -> list[Effect]:
    return request.app.state.effects


def webhook_cipher(request: Request) -> FieldCipher:
    return request.app.state.webhook_cipher


def webhook_sender(request: Request) -> Worker:
    return request.app.state.webhook_sender


def push_key(request: Request):
    """The VAPID key; None where Web Push is not configured."""
    return request.app.state.push_key


SettingsDep = Annotated[NotifySettings, Depends(settings)]
DatabaseDep = Annotated[Database, Depends(database)]
"""The database itself, for the live stream, which reads in sessions of its own while it lasts."""
BroadcasterDep = Annotated[Broadcaster, Depends(broadcaster)]
EffectsDep = Annotated[list[Effect], Depends(effects)]
WebhookCipherDep = Annotated[FieldCipher, Depends(webhook_cipher)]
WebhookSenderDep = Annotated[Worker, Depends(webhook_sender)]
PushKeyDep = Annotated[object, Depends(push_key)]
Grower = Annotated[Principal, Depends(require("grower"))]
WebhookOwner = Annotated[Principal, Depends(require("grower", scope="webhooks"))]

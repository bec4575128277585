"""What the notify service's routes take, as ``Annotated`` dependencies.

The providers below are the only code that reads ``request.app.state`` (what ``app.py`` and the
workers' start hooks built); routes declare the aliases, and the domain functions get plain arguments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from common.auth import CurrentPrincipal, Principal, require
from common.crypto import FieldCipher
from common.db import Database, SessionDep
from common.service import state_dependency
from common.worker import Worker
from services.notify.events.handler import Effect
from services.notify.inbox.broadcast import Broadcaster
from services.notify.settings import NotifySettings

__all__ = ["BroadcasterDep", "CurrentPrincipal", "DatabaseDep", "EffectsDep", "Grower", "PushKeyDep",
           "SessionDep", "SettingsDep", "WebhookCipherDep", "WebhookOwner", "WebhookSenderDep"]


settings = state_dependency("settings")
database = state_dependency("db")
broadcaster = state_dependency("broadcaster")
effects = state_dependency("effects")
webhook_cipher = state_dependency("webhook_cipher")
webhook_sender = state_dependency("webhook_sender")
push_key = state_dependency("push_key")  # None where Web Push is not configured


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

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
from common.service import from_state
from common.worker import Worker
from services.notify.events.handler import Effect
from services.notify.inbox.broadcast import Broadcaster
from services.notify.settings import NotifySettings

__all__ = ["BroadcasterDep", "CurrentPrincipal", "DatabaseDep", "EffectsDep", "Grower", "PushKeyDep",
           "SessionDep", "SettingsDep", "WebhookCipherDep", "WebhookOwner", "WebhookSenderDep"]


settings = from_state("settings")
database = from_state("db")
broadcaster = from_state("broadcaster")
effects = from_state("effects")
webhook_cipher = from_state("webhook_cipher")
webhook_sender = from_state("webhook_sender")
push_key = from_state("push_key")  # None where Web Push is not configured


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

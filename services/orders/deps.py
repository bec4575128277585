"""What the orders service's routes take, as ``Annotated`` dependencies.

The providers below are the only code that reads ``request.app.state`` (what ``app.py`` built at
start-up); routes declare the aliases, and the domain functions get plain arguments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import async_sessionmaker

from common.auth import CurrentPrincipal, OptionalPrincipal, Principal, require
from common.crypto import FieldCipher
from common.db import Database, SessionDep
from common.service import state_dependency
from common.worker import Worker
from services.orders.catalog_client import CatalogClient
from services.orders.orders.tracking import NotifyMail
from services.orders.settings import OrdersSettings

__all__ = ["AutocommitDep", "BaseUrlDep", "BuyerMailDep", "CatalogClientDep", "CipherDep", "CurrentPrincipal",
           "DatabaseDep", "Grower", "GrowerReader", "NotifyMailDep", "OptionalPrincipal", "ReconcilerDep",
           "SessionDep", "SettingsDep"]


settings = state_dependency("settings")
database = state_dependency("db")
cipher = state_dependency("cipher")
catalog_client = state_dependency("catalog")
reconciler = state_dependency("reconciler")
buyer_mail = state_dependency("buyer_mail")
notify_mail = state_dependency("notify_mail")


async def autocommit(request: Request) -> async_sessionmaker:
    return request.app.state.db.autocommit


async def base_url(request: Request) -> str:
    return request.app.state.settings.public_base_url


SettingsDep = Annotated[OrdersSettings, Depends(settings)]
DatabaseDep = Annotated[Database, Depends(database)]
"""The database itself, for reads that take sessions of their own (a streamed CSV, page by page)."""
AutocommitDep = Annotated[async_sessionmaker, Depends(autocommit)]
"""Sessions for single statements outside the request's unit of work (claiming an Idempotency-Key)."""
CipherDep = Annotated[FieldCipher, Depends(cipher)]
BaseUrlDep = Annotated[str, Depends(base_url)]
CatalogClientDep = Annotated[CatalogClient, Depends(catalog_client)]
ReconcilerDep = Annotated[Worker, Depends(reconciler)]
BuyerMailDep = Annotated[Worker, Depends(buyer_mail)]
"""The worker that hands buyers' mail (the tracking link) to notify: woken when an order is stored."""
NotifyMailDep = Annotated[NotifyMail, Depends(notify_mail)]
Grower = Annotated[Principal, Depends(require("grower", scope="orders:write"))]
GrowerReader = Annotated[Principal, Depends(require("grower", scope="orders:read"))]

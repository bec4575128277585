"""What the orders service's routes take, as ``Annotated`` dependencies.

The providers below are the only code that reads ``request.app.state`` (what ``app.py`` built at
start-up); routes declare the aliases, and the domain functions get plain arguments.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.auth import CurrentPrincipal, OptionalPrincipal, Principal, require
from common.crypto import FieldCipher
from common.db import Database, SessionDep
from common.service import state_dependency
from services.orders.catalog_client import CatalogClient
from services.orders.orders.tracking import NotifyMail
from services.orders.settings import OrdersSettings

__all__ = ["BaseUrlDep", "CatalogClientDep", "CipherDep", "CurrentPrincipal", "DatabaseDep", "Grower", "GrowerReader",
           "NotifyMailDep", "OptionalPrincipal", "PlacingDep", "SessionDep", "SettingsDep"]


settings = state_dependency("settings")
database = state_dependency("db")
cipher = state_dependency("cipher")
catalog_client = state_dependency("catalog")
notify_mail = state_dependency("notify_mail")


async def base_url(request: Request) -> str:
    return request.app.state.settings.public_base_url


async def placing(request: Request) -> dict:
    """What placing an order takes besides the session and the order (``placing.place_order``'s
    keyword arguments), in one dependency rather than six: FastAPI's solving of each dependency was
    an eighth of ``POST /orders``'s CPU."""
    state = request.app.state
    return {"keys": state.db.autocommit, "catalog": state.catalog, "cipher": state.cipher,
            "base_url": state.settings.public_base_url, "reconciler": state.reconciler,
            "buyer_mail": state.buyer_mail}


SettingsDep = Annotated[OrdersSettings, Depends(settings)]
DatabaseDep = Annotated[Database, Depends(database)]
"""The database itself, for reads that take sessions of their own (a streamed CSV, page by page)."""
CipherDep = Annotated[FieldCipher, Depends(cipher)]
BaseUrlDep = Annotated[str, Depends(base_url)]
CatalogClientDep = Annotated[CatalogClient, Depends(catalog_client)]
PlacingDep = Annotated[dict, Depends(placing)]
NotifyMailDep = Annotated[NotifyMail, Depends(notify_mail)]
Grower = Annotated[Principal, Depends(require("grower", scope="orders:write"))]
GrowerReader = Annotated[Principal, Depends(require("grower", scope="orders:read"))]

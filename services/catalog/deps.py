"""What the catalog's routes take, as ``Annotated`` dependencies.

The providers below are the only code that reads ``request.app.state`` (what ``app.py`` built at
start-up); routes declare the aliases, and the domain functions get plain arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request

from common.auth import OptionalPrincipal, Principal, require
from common.crypto import FieldCipher
from common.db import SessionDep
from common.service import state_dependency
from services.catalog.listings import ListingCache
from services.catalog.photos.storage import LocalPhotoStore, PhotoStore
from services.catalog.settings import CatalogSettings

__all__ = ["BaseUrlDep", "CipherDep", "Grower", "GrowerReader", "LimiterDep", "ListingsDep", "OptionalPrincipal",
           "SessionDep", "SettingsDep", "StoreDep"]


settings = state_dependency("settings")
cipher = state_dependency("cipher")
listings = state_dependency("listings")


def base_url(request: Request) -> str:
    return request.app.state.settings.public_base_url


def photo_store(request: Request) -> PhotoStore:
    """The app's photo store: the local folder ``media_dir`` unless start-up put another there."""
    state = request.app.state
    if getattr(state, "photo_store", None) is None:
        state.photo_store = LocalPhotoStore(Path(state.settings.media_dir))
    return state.photo_store


def decode_limiter(request: Request) -> CapacityLimiter:
    """At most ``photo_decode_workers`` photos are decoded at once: each may take a few hundred MB."""
    state = request.app.state
    if getattr(state, "photo_limiter", None) is None:
        state.photo_limiter = CapacityLimiter(state.settings.photo_decode_workers)
    return state.photo_limiter


SettingsDep = Annotated[CatalogSettings, Depends(settings)]
CipherDep = Annotated[FieldCipher, Depends(cipher)]
ListingsDep = Annotated[ListingCache, Depends(listings)]
"""The kept listings and product pages (services/catalog/listings.py)."""
BaseUrlDep = Annotated[str, Depends(base_url)]
"""The marketplace's public address, which the replies' ``url`` fields are built on."""
StoreDep = Annotated[PhotoStore, Depends(photo_store)]
LimiterDep = Annotated[CapacityLimiter, Depends(decode_limiter)]
Grower = Annotated[Principal, Depends(require("grower", scope="catalog:write"))]
GrowerReader = Annotated[Principal, Depends(require("grower", scope="catalog:read"))]

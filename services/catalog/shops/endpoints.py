from __future__ import annotations

from fastapi import APIRouter, Request

from common.db import SessionDep
from common.errors import NotFound
from common.params import IdPath
from services.catalog.shops.models import Shop, ShopPublic

router = APIRouter(prefix="/api/v1/shops", tags=["shops"])


def to_public(shop: Shop, base_url: str) -> ShopPublic:
    return ShopPublic.model_validate({**shop.model_dump(), "url": f"{base_url}/s/{shop.slug}"})


@router.get("/{shop_id}", response_model=ShopPublic, summary="One shop")
async def get_shop(request: Request, session: SessionDep, shop_id: IdPath) -> ShopPublic:
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise NotFound("No such shop")
    return to_public(shop, request.app.state.settings.public_base_url)

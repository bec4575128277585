from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from common.db import SessionDep
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from services.catalog.products import service
from services.catalog.products.models import Category, ProductPublic

router = APIRouter(prefix="/api/v1/products", tags=["products"])


@router.get("", response_model=Page[ProductPublic], summary="List active products (varieties)")
async def list_products(
    request: Request, session: SessionDep,
    shop_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    category: Category | None = None, limit: LimitQuery = 20, cursor: CursorQuery = None,
) -> Page[ProductPublic]:
    rows, next_cursor = await service.list_public(session, shop_id=shop_id, category=category,
                                                  limit=limit, cursor=cursor)
    base = request.app.state.settings.public_base_url
    return Page(items=[service.to_public(p, base) for p in rows], next_cursor=next_cursor)


@router.get("/{product_id}", response_model=ProductPublic, summary="One active product")
async def get_product(request: Request, session: SessionDep, product_id: IdPath) -> ProductPublic:
    product = await service.get_public(session, product_id)
    return service.to_public(product, request.app.state.settings.public_base_url)

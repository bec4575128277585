from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from common.auth import OptionalPrincipal, Principal, require
from common.db import SessionDep
from common.errors import Forbidden
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import MAX_ID, IdPath
from services.catalog.products import service
from services.catalog.products.models import Category, ProductStatus
from services.catalog.products.schemas import ProductCreate, ProductPublic, ProductUpdate

router = APIRouter(prefix="/api/v1/products", tags=["products"])
Grower = Annotated[Principal, Depends(require("grower", scope="catalog:write"))]


def base_url(request: Request) -> str:
    return request.app.state.settings.public_base_url


@router.post("", status_code=201, response_model=ProductPublic, summary="List a new variety in your shop")
async def create_product(request: Request, session: SessionDep, owner: Grower, data: ProductCreate) -> ProductPublic:
    product = await service.create(session, owner, data)
    return service.to_public(product, base_url(request))


@router.get("", response_model=Page[ProductPublic], summary="Active varieties, newest first; or your own")
async def list_products(
    request: Request, session: SessionDep, viewer: OptionalPrincipal,
    shop_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    category: Category | None = None,
    mine: Annotated[bool, Query(description="Your own varieties, in any status (growers)")] = False,
    status: Annotated[ProductStatus | None, Query(description="With mine=true: only this status")] = None,
    limit: LimitQuery = 20, cursor: CursorQuery = None,
) -> Page[ProductPublic]:
    owner = None
    if mine:
        if viewer is None or viewer.role != "grower" or not viewer.allows("catalog:read"):
            raise Forbidden("mine=true is for a grower's own varieties")
        owner = viewer
    rows, next_cursor = await service.list_products(session, shop_id=shop_id, category=category, owner=owner,
                                                    status=status, limit=limit, cursor=cursor)
    return Page(items=[service.to_public(p, base_url(request)) for p in rows], next_cursor=next_cursor)


@router.get("/{product_id}", response_model=ProductPublic, summary="One variety")
async def get_product(request: Request, session: SessionDep, viewer: OptionalPrincipal,
                      product_id: IdPath) -> ProductPublic:
    product = await service.get_visible(session, product_id, viewer)
    return service.to_public(product, base_url(request))


@router.patch("/{product_id}", response_model=ProductPublic, summary="Change one of your varieties")
async def update_product(request: Request, session: SessionDep, owner: Grower, product_id: IdPath,
                         data: ProductUpdate) -> ProductPublic:
    product = await service.get_owned(session, owner, product_id)
    product = await service.update(session, product, data)
    return service.to_public(product, base_url(request))


@router.delete("/{product_id}", status_code=204, summary="Archive one of your varieties")
async def archive_product(session: SessionDep, owner: Grower, product_id: IdPath) -> Response:
    await service.archive(session, await service.get_owned(session, owner, product_id))
    return Response(status_code=204)

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from common.errors import Forbidden, UnprocessableEntity
from common.openapi import problems
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import MAX_ID, IdPath
from services.catalog import listings
from services.catalog.deps import BaseUrlDep, Grower, OptionalPrincipal, SessionDep
from services.catalog.products import service
from services.catalog.products.models import Category, ProductStatus
from services.catalog.products.page_json import product_json
from services.catalog.products.schemas import MAX_PRICE, ProductCreate, ProductPublic, ProductUpdate
from services.catalog.products.service import Sort

router = APIRouter(prefix="/api/v1/products", tags=["products"])


@router.post("", operation_id="products_create",
             status_code=201, response_model=ProductPublic, summary="List a new variety in your shop",
             responses=problems(404, s404="You have no shop yet; open one first"))
async def create_product(session: SessionDep, owner: Grower, data: ProductCreate,
                         base_url: BaseUrlDep) -> ProductPublic:
    product = await service.create(session, owner, data)
    return service.to_public(product, base_url)


Q_MAX_LENGTH = 200
Q_DESCRIPTION = ("Words to find, accents and case ignored (\"hoa sung\" finds \"Hoa súng\"); every word must "
                 "appear in the name, description, shop name or province; the last may be the start of a word")
PRICE_RANGE = {"ge": 0, "le": MAX_PRICE}


@router.get("", operation_id="products_list",
            response_model=Page[ProductPublic], summary="Find varieties; or list your own",
            description="Active varieties, searched (`q`), filtered and sorted, a page at a time "
                        "(`next_cursor`). The price of a variety is its lowest retail price. "
                        "Anonymous replies carry `ETag` and `Cache-Control: public, max-age=60`; "
                        "`If-None-Match` with the ETag answers 304.",
            responses={304: {"description": "Not modified (If-None-Match matched the ETag)"},
                       **problems(403, 404, s403="`mine=true` needs a grower account (or an API key with catalog:read)",
                                  s404="`mine=true`, and you have no shop yet")})
async def list_products(
    request: Request, session: SessionDep, viewer: OptionalPrincipal, base_url: BaseUrlDep,
    q: Annotated[str | None, Query(max_length=Q_MAX_LENGTH, description=Q_DESCRIPTION)] = None,
    shop_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    province_code: Annotated[str | None, Query(pattern=r"^\d{2}$", description="The shop's province")] = None,
    category: Category | None = None,
    min_price: Annotated[int | None, Query(**PRICE_RANGE, description="VND, at least")] = None,
    max_price: Annotated[int | None, Query(**PRICE_RANGE, description="VND, at most")] = None,
    in_stock: Annotated[bool | None, Query(description="true: only in stock; false: only sold out")] = None,
    wholesale: Annotated[bool | None, Query(description="true: only varieties with a wholesale price; "
                                                        "false: only those without")] = None,
    sort: Annotated[Sort | None, Query(description="Default: relevance with q, else newest")] = None,
    mine: Annotated[bool, Query(description="Your own varieties, in any status (growers)")] = False,
    status: Annotated[ProductStatus | None, Query(description="With mine=true: only this status")] = None,
    limit: LimitQuery = 20, cursor: CursorQuery = None,
) -> Response:
    owner = None
    if mine:
        if viewer is None or viewer.role != "grower" or not viewer.allows("catalog:read"):
            raise Forbidden("mine=true is for a grower's own varieties")
        owner = viewer
    if min_price is not None and max_price is not None and min_price > max_price:
        raise UnprocessableEntity("min_price is above max_price", errors=[
            {"field": "query.min_price", "message": "must not be above max_price", "type": "range"}])
    filters = service.Filters(shop_id=shop_id, province_code=province_code, category=category,
                              min_price=min_price, max_price=max_price, in_stock=in_stock,
                              wholesale=wholesale, status=status)
    # Anonymous pages are kept until what they show changes; a kept one is answered before this
    # endpoint, by listings.KeptReplyRoute (services/catalog/listings.py).
    kept_since, key = listings.since(request, viewer), listings.listing_key(request.scope)
    stale = listings.stale(request, key) if kept_since is not None else None
    if stale is not None:  # kept, but an item's stock changed since: read those items again, not the page
        rows = await service.active_by_ids(session, listings.missing(request, stale))
        items = listings.items_of(request, stale, {p.id: product_json(p, base_url) for p in rows})
        if items is not None:
            return listings.reply_listing(request, kept_since, key, items, stale.tail)
    rows, next_cursor = await service.list_products(session, q=q, filters=filters, sort=sort, owner=owner,
                                                    limit=limit, cursor=cursor)
    # = Page[ProductPublic] as JSON, without the models (services/catalog/products/page_json.py)
    items = {p.id: product_json(p, base_url) for p in rows}
    return listings.reply_listing(request, kept_since, key, items, listings.listing_tail(next_cursor))


@router.get("/{product_id}", operation_id="products_get", response_model=ProductPublic, summary="One variety",
            responses={304: {"description": "Not modified (If-None-Match matched the ETag)"}})
async def get_product(request: Request, session: SessionDep, viewer: OptionalPrincipal, base_url: BaseUrlDep,
                      product_id: IdPath) -> Response:
    kept_since = listings.since(request, viewer)  # kept as the listings are
    product = await service.get_visible(session, product_id, viewer)
    body = product_json(product, base_url)  # = ProductPublic as JSON, as a listing's item
    return listings.reply(request, kept_since, listings.product_key(request.scope), [product.id], body)


@router.patch("/{product_id}", operation_id="products_update",
              response_model=ProductPublic, summary="Change one of your varieties")
async def update_product(session: SessionDep, owner: Grower, product_id: IdPath, data: ProductUpdate,
                         base_url: BaseUrlDep) -> ProductPublic:
    product = await service.get_owned(session, owner, product_id)
    product = await service.update(session, product, data)
    return service.to_public(product, base_url)


@router.delete("/{product_id}", operation_id="products_archive",
               status_code=204, summary="Archive one of your varieties")
async def archive_product(session: SessionDep, owner: Grower, product_id: IdPath) -> Response:
    await service.archive(session, await service.get_owned(session, owner, product_id))
    return Response(status_code=204)

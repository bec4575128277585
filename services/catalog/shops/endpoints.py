from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from common.errors import NotFound
from common.http_cache import cached_json, json_body
from common.openapi import problems
from common.pagination import CursorQuery, LimitQuery, Page
from common.params import IdPath
from common.vietnam import BANKS, provinces, wards
from services.catalog import listings
from services.catalog.deps import BaseUrlDep, CipherDep, Grower, GrowerReader, SessionDep
from services.catalog.shops import service
from services.catalog.shops.schemas import Bank, Province, ShopCreate, ShopPrivate, ShopPublic, ShopUpdate, Ward

router = APIRouter(prefix="/api/v1", tags=["shops"])


@router.post("/shops", operation_id="shops_create",
             status_code=201, response_model=ShopPrivate, summary="Open your shop (one per grower)",
             responses=problems(409, s409="You already have a shop, or its slug is taken"))
async def create_shop(session: SessionDep, owner: Grower, data: ShopCreate, cipher: CipherDep,
                      base_url: BaseUrlDep) -> ShopPrivate:
    shop = await service.create(session, owner, data, cipher=cipher)
    return service.to_private(shop, base_url)


NOT_MODIFIED = {304: {"description": "Not modified (If-None-Match matched the ETag)"}}


@router.get("/shops", operation_id="shops_list",
            response_model=Page[ShopPublic], summary="Find shops, optionally in one province",
            description="With `q`: shops whose name, description or province has the words (accents and case "
                        "ignored), most relevant first; else in the order they opened. `ETag`, "
                        "`Cache-Control: public, max-age=60`, 304 on `If-None-Match`.",
            responses=NOT_MODIFIED)
async def list_shops(request: Request, session: SessionDep, base_url: BaseUrlDep,
                     q: Annotated[str | None, Query(max_length=200, description="Words to find")] = None,
                     province_code: Annotated[str | None, Query(pattern=r"^\d{2}$")] = None,
                     slug: Annotated[str | None, Query(max_length=60, pattern=r"^[a-z0-9-]+$",
                                                       description="The shop at /s/{slug}")] = None,
                     limit: LimitQuery = 20, cursor: CursorQuery = None) -> Response:
    kept_since = listings.since(request)  # the same for every caller: kept until a shop changes
    rows, next_cursor = await service.list_shops(session, province_code=province_code, limit=limit, cursor=cursor,
                                                 q=q, slug=slug)
    page = Page[ShopPublic](items=[service.to_public(s, base_url) for s in rows], next_cursor=next_cursor)
    return listings.reply(request, kept_since, listings.shops_key(request.scope), (), json_body(page))


NO_SHOP = problems(404, s404="You have no shop yet")


@router.get("/shops/mine", operation_id="shops_get_mine",
            response_model=ShopPrivate, summary="Your shop, with its private details",
            responses=NO_SHOP)
async def my_shop(session: SessionDep, owner: GrowerReader, base_url: BaseUrlDep) -> ShopPrivate:
    return service.to_private(await service.get_owned(session, owner), base_url)


@router.get("/shops/{shop_id}", operation_id="shops_get",
            response_model=ShopPublic, summary="One shop", responses=NOT_MODIFIED)
async def get_shop(request: Request, session: SessionDep, base_url: BaseUrlDep, shop_id: IdPath) -> Response:
    return cached_json(request, service.to_public(await service.get(session, shop_id), base_url),
                       private=False)


@router.patch("/shops/mine", operation_id="shops_update_mine",
              response_model=ShopPrivate, summary="Change your shop (no id needed)",
              responses=NO_SHOP)
async def update_my_shop(session: SessionDep, owner: Grower, data: ShopUpdate, cipher: CipherDep,
                         base_url: BaseUrlDep) -> ShopPrivate:
    shop = await service.update(session, await service.get_owned(session, owner), data, cipher=cipher)
    return service.to_private(shop, base_url)


@router.patch("/shops/{shop_id}", operation_id="shops_update", response_model=ShopPrivate, summary="Change your shop")
async def update_shop(session: SessionDep, owner: Grower, shop_id: IdPath, data: ShopUpdate,
                      cipher: CipherDep, base_url: BaseUrlDep) -> ShopPrivate:
    shop = await service.get_owned(session, owner, shop_id)
    shop = await service.update(session, shop, data, cipher=cipher)
    return service.to_private(shop, base_url)


@router.get("/provinces", operation_id="shops_list_provinces",
            summary="The 34 provinces and cities (since 1 July 2025)")
async def list_provinces() -> list[Province]:
    return [Province(**p) for p in provinces()]


@router.get("/provinces/{code}/wards", operation_id="shops_list_wards", summary="The wards of a province")
async def list_wards(code: Annotated[str, Path(pattern=r"^\d{1,2}$")]) -> list[Ward]:
    found = wards(code)
    if found is None:
        raise NotFound("No such province")
    return [Ward(**w) for w in found]


@router.get("/banks", operation_id="shops_list_banks", summary="Banks for VietQR transfers: BIN and name")
async def list_banks() -> list[Bank]:
    return [Bank(bin=bin_, name=name) for bin_, name in sorted(BANKS.items(), key=lambda b: b[1])]

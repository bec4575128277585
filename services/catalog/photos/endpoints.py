from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.responses import FileResponse, StreamingResponse

from common.errors import NotFound
from common.pagination import Page
from common.params import IdPath
from services.catalog.deps import BaseUrlDep, Grower, LimiterDep, OptionalPrincipal, SessionDep, SettingsDep, StoreDep
from services.catalog.photos import service
from services.catalog.photos.schemas import PhotoMove, PhotoPublic, to_public
from services.catalog.photos.storage import valid_name
from services.catalog.photos.upload import receive_photo
from services.catalog.products import service as products

router = APIRouter(prefix="/api/v1/products/{product_id}/photos", tags=["photos"])
media_router = APIRouter(tags=["photos"])

# Files never change under a name (the name is their content hash): caches may keep them a year.
IMMUTABLE = "public, max-age=31536000, immutable"

# The document names the multipart form, which every HTTP client (and every generated one) can send.
# The bare image (`Content-Type: image/jpeg`, …) is taken too: described in words, as `image/*` is no
# media type a client generator can build a call for.
UPLOAD_BODY = {
    "required": True,
    "description": "The photo in the form field `file`; or, instead of a form, the bare image as the body "
                   "with its own `Content-Type: image/…`",
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary",
                                    "description": "JPEG, PNG, WebP or HEIC; at most 15 MB and 50 megapixels"}}}},
    },
}


@router.post("", operation_id="photos_add",
             status_code=201, response_model=PhotoPublic, openapi_extra={"requestBody": UPLOAD_BODY},
             summary="Add a photo to one of your varieties",
             responses={200: {"model": PhotoPublic, "description": "This picture was already there (a retry)"},
                        400: {"description": "The upload could not be read (a broken multipart body)"},
                        413: {"description": "Over 15 MB"},
                        415: {"description": "Not a JPEG, PNG, WebP or HEIC by its content"},
                        422: {"description": "Too many pixels, unreadable, or the variety has 10 photos"}})
async def add_photo(request: Request, response: Response, session: SessionDep, owner: Grower,
                    store: StoreDep, limiter: LimiterDep, settings: SettingsDep, base_url: BaseUrlDep,
                    product_id: IdPath) -> PhotoPublic:
    product = await service.ready_for_upload(session, owner, product_id)
    async with receive_photo(request, settings.max_photo_bytes) as upload:
        photo, created = await service.add(session, product, upload, store=store, limiter=limiter)
    if not created:
        response.status_code = 200
    return to_public(photo, base_url)


@router.get("", operation_id="photos_list",
            response_model=Page[PhotoPublic], summary="A variety's photos, the cover first")
async def list_photos(session: SessionDep, viewer: OptionalPrincipal, base_url: BaseUrlDep,
                      product_id: IdPath) -> Page[PhotoPublic]:
    """At most ten, so always one page."""
    product = await products.get_visible(session, product_id, viewer)
    photos = await service.list_photos(session, product.id)
    return Page(items=[to_public(p, base_url) for p in photos])


@router.patch("/{photo_id}", operation_id="photos_move",
              response_model=Page[PhotoPublic], summary="Move a photo (position 0: the cover)")
async def move_photo(session: SessionDep, owner: Grower, base_url: BaseUrlDep, product_id: IdPath,
                     photo_id: IdPath, data: PhotoMove) -> Page[PhotoPublic]:
    product = await products.get_owned(session, owner, product_id)
    photos = await service.move(session, product, photo_id, data.position)
    return Page(items=[to_public(p, base_url) for p in photos])


@router.delete("/{photo_id}", operation_id="photos_delete",
               status_code=204, summary="Delete a photo of one of your varieties")
async def delete_photo(session: SessionDep, owner: Grower, store: StoreDep, product_id: IdPath,
                       photo_id: IdPath) -> Response:
    product = await products.get_owned(session, owner, product_id)
    await service.delete(session, product, photo_id, store=store)
    return Response(status_code=204)


# Not an API operation: the photo files behind the URLs that replies give (`url`, `sizes`, `og_image`).
@media_router.head("/media/{name}", include_in_schema=False)
@media_router.get("/media/{name}", include_in_schema=False)
async def media(name: str, store: StoreDep, session: SessionDep, limiter: LimiterDep) -> Response:
    """Names carry the content hash, so a file never changes: cached for a year, ``immutable``. A size
    that photos stored before it lack is made on its first request (``photo-sizes`` makes them all)."""
    stored = await store.open(name)
    if stored is None and valid_name(name) and await service.make_missing(session, store, limiter, name):
        stored = await store.open(name)
    if stored is None:
        raise NotFound("No such photo file")
    headers = {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if stored.path is not None:
        return FileResponse(stored.path, media_type=stored.content_type, headers=headers)
    headers["Content-Length"] = str(stored.size)
    return StreamingResponse(stored.chunks, media_type=stored.content_type, headers=headers)


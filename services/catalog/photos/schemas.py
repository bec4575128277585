"""What the photo endpoints reply: a URL per stored size, ready for ``srcset``, and the link preview."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field
from sqlalchemy import inspect
from sqlalchemy.orm.base import NO_VALUE

from common.params import StrictBody
from services.catalog.photos.models import Photo
from services.catalog.photos.processing import DEFAULT_WIDTH, OG_SIZE, WIDTHS, file_names, scaled_size


class PhotoSize(BaseModel):
    url: str
    width: int
    height: int


class PhotoPublic(BaseModel):
    id: int
    position: int = Field(description="0 is the cover: shown first and in link previews")
    width: int = Field(description="Of the upright photo as uploaded")
    height: int
    url: str = Field(description="The 800 px WebP: a good default `src`")
    sizes: list[PhotoSize] = Field(description="WebP, 320, 560, 800 and 1600 px wide (never enlarged), narrowest first")
    srcset: str = Field(description='Ready for <img srcset>: "…-320.webp 320w, …-560.webp 560w, …"')
    og_image: PhotoSize = Field(description="1200×630 JPEG, cropped to fill, for Open Graph link previews")
    created_at: dt.datetime


class PhotoMove(StrictBody):
    position: int = Field(ge=0, le=9, strict=True, description="The new place; 0 makes it the cover")


def media_url(base_url: str, name: str) -> str:
    return f"{base_url}/media/{name}"


def to_public(photo: Photo, base_url: str) -> PhotoPublic:
    names = file_names(photo.content_hash)
    sizes = []
    for target in WIDTHS:
        width, height = scaled_size(photo.width, photo.height, target)
        sizes.append(PhotoSize(url=media_url(base_url, names[str(target)]), width=width, height=height))
    # A small photo is stored at its own size under several names: srcset lists each width once.
    seen: set[int] = set()
    srcset = ", ".join(f"{s.url} {s.width}w" for s in sizes if not (s.width in seen or seen.add(s.width)))
    return PhotoPublic(
        id=photo.id, position=photo.position, width=photo.width, height=photo.height,
        url=sizes[WIDTHS.index(DEFAULT_WIDTH)].url,
        sizes=sizes, srcset=srcset, created_at=photo.created_at,
        og_image=PhotoSize(url=media_url(base_url, names["og"]), width=OG_SIZE[0], height=OG_SIZE[1]),
    )


def photos_of(product: object, base_url: str) -> list[PhotoPublic]:
    """A product's photos, cover first, for its reply. A product fresh from an insert has none loaded
    (and none to load): that reads as no photos rather than as a lazy load in async code."""
    loaded = inspect(product).attrs.photos.loaded_value
    if loaded is NO_VALUE:
        return []
    return [to_public(p, base_url) for p in sorted(loaded, key=lambda p: p.position)]

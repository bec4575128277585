"""A page of varieties as the JSON ``Page[ProductPublic]`` would give, written straight from the loaded
rows: no pydantic model per product, variant, tier, photo and size in between (a third of a listing's
CPU before, docs/decisions/0027-catalog-reads.md). ``tests/catalog/test_listings.py`` holds it to the
models' output byte for byte, so the schema in the OpenAPI document stays the truth."""

from __future__ import annotations

from typing import Any

import orjson

from services.catalog.listings import listing_body, listing_tail
from services.catalog.photos.processing import DEFAULT_WIDTH, OG_SIZE, WIDTHS, file_names, scaled_size
from services.catalog.photos.schemas import media_url
from services.catalog.products.models import Product

DUMP_OPTIONS = orjson.OPT_UTC_Z  # datetimes as pydantic writes them: …Z for UTC


def _photo(photo: Any, base_url: str) -> dict:
    names = file_names(photo.content_hash)
    sizes = []
    for target in WIDTHS:
        width, height = scaled_size(photo.width, photo.height, target)
        sizes.append({"url": media_url(base_url, names[str(target)]), "width": width, "height": height})
    seen: set[int] = set()
    srcset = ", ".join(f"{s['url']} {s['width']}w" for s in sizes if not (s["width"] in seen or seen.add(s["width"])))
    return {"id": photo.id, "position": photo.position, "width": photo.width, "height": photo.height,
            "url": sizes[WIDTHS.index(DEFAULT_WIDTH)]["url"], "sizes": sizes, "srcset": srcset,
            "og_image": {"url": media_url(base_url, names["og"]), "width": OG_SIZE[0], "height": OG_SIZE[1]},
            "created_at": photo.created_at}


def _product(product: Product, base_url: str) -> dict:
    # Collections as loaded with the row (``lazy="selectin"``); never a lazy load here.
    variants = product.__dict__.get("variants", ())
    photos = sorted(product.__dict__.get("photos", ()), key=lambda p: p.position)
    return {
        "id": product.id, "shop_id": product.shop_id, "url": f"{base_url}/p/{product.id}", "name": product.name,
        "description": product.description, "category": product.category, "status": product.status,
        "min_price": product.min_price, "in_stock": product.in_stock,
        "variants": [{"id": v.id, "label": v.label, "retail_price": v.retail_price,
                      "wholesale_tiers": [{"min_quantity": t["min_quantity"], "unit_price": t["unit_price"]}
                                          for t in v.wholesale_tiers],
                      "min_order_quantity": v.min_order_quantity, "stock": v.stock, "in_stock": v.stock > 0,
                      "low_stock_threshold": v.low_stock_threshold, "weight_grams": v.weight_grams}
                     for v in variants if not v.archived],
        "photos": [_photo(p, base_url) for p in photos],
        "created_at": product.created_at, "updated_at": product.updated_at,
    }


def product_json(product: Product, base_url: str) -> bytes:
    """One variety as ``ProductPublic`` writes it: an item of a listing, and an anonymous product page."""
    return orjson.dumps(_product(product, base_url), option=DUMP_OPTIONS)


def page_body(rows: list[Product], next_cursor: str | None, base_url: str) -> bytes:
    """The page as one body (the listing itself keeps its items apart: ``listings.put_listing``)."""
    return listing_body([product_json(p, base_url) for p in rows], listing_tail(next_cursor))

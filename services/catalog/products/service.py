"""Reading and writing varieties. Endpoints call these; they never build queries themselves."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.errors import NotFound
from common.pagination import decode_cursor, encode_cursor
from services.catalog.products.models import Category, Product, ProductPublic, ProductStatus, VariantPublic


def to_public(product: Product, base_url: str) -> ProductPublic:
    return ProductPublic(
        id=product.id, shop_id=product.shop_id, name=product.name, description=product.description,
        category=product.category, status=product.status, url=f"{base_url}/p/{product.id}",
        created_at=product.created_at, updated_at=product.updated_at,
        variants=[VariantPublic.model_validate(v, from_attributes=True) for v in product.variants],
    )


async def list_public(session: AsyncSession, *, shop_id: int | None, category: Category | None,
                      limit: int, cursor: str | None) -> tuple[list[Product], str | None]:
    """Active products, newest first, one page at a time."""
    stmt = select(Product).where(Product.status == ProductStatus.active)
    if shop_id is not None:
        stmt = stmt.where(Product.shop_id == shop_id)
    if category is not None:
        stmt = stmt.where(Product.category == category)
    after = decode_cursor(cursor)
    if after is not None:
        before_id = after.get("id")
        if not isinstance(before_id, int):
            raise NotFound("Unknown cursor")
        stmt = stmt.where(Product.id < before_id)
    rows = (await session.scalars(stmt.order_by(Product.id.desc()).limit(limit + 1))).all()
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor


async def get_public(session: AsyncSession, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None or product.status != ProductStatus.active:
        raise NotFound("No such product")
    return product

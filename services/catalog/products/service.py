"""Listing and changing varieties. Endpoints call these; they never build queries themselves."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from common.auth import Principal
from common.errors import NotFound, UnprocessableEntity
from common.pagination import decode_cursor, encode_cursor
from common.text import fold
from services.catalog.products.models import Category, Product, ProductStatus, Variant
from services.catalog.products.schemas import (
    ProductCreate, ProductPublic, ProductUpdate, VariantIn, VariantPublic, WholesaleTier,
)
from services.catalog.shops import service as shops
from services.catalog.shops.models import Shop, utcnow


def to_public(product: Product, base_url: str) -> ProductPublic:
    return ProductPublic(
        id=product.id, shop_id=product.shop_id, url=f"{base_url}/p/{product.id}", name=product.name,
        description=product.description, category=product.category, status=product.status,
        created_at=product.created_at, updated_at=product.updated_at,
        variants=[VariantPublic(id=v.id, label=v.label, retail_price=v.retail_price,
                                wholesale_tiers=[WholesaleTier(**t) for t in v.wholesale_tiers],
                                min_order_quantity=v.min_order_quantity, stock=v.stock, in_stock=v.stock > 0,
                                weight_grams=v.weight_grams)
                  for v in product.variants if not v.archived],
    )


def _index(product: Product) -> None:
    product.search_text = fold(f"{product.name} {product.description}")


def _variant_fields(data: VariantIn, position: int) -> dict:
    fields = data.model_dump(exclude={"id", "wholesale_tiers"})
    fields["wholesale_tiers"] = [t.model_dump() for t in data.wholesale_tiers]
    fields["position"] = position
    return fields


async def create(session: AsyncSession, owner: Principal, data: ProductCreate) -> Product:
    shop = await shops.get_owned(session, owner)
    product = Product(shop_id=shop.id, **data.model_dump(exclude={"variants"}))
    product.variants = [Variant(**_variant_fields(v, i)) for i, v in enumerate(data.variants)]
    _index(product)
    session.add(product)
    await session.commit()
    return product


async def get_visible(session: AsyncSession, product_id: int, viewer: Principal | None) -> Product:
    """Active products for everyone; drafts and archived ones for their owner only (else 404)."""
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product")
    if product.status != ProductStatus.active and not await _owns(session, viewer, product):
        raise NotFound("No such product")
    return product


async def get_owned(session: AsyncSession, owner: Principal, product_id: int) -> Product:
    product = await session.get(Product, product_id)
    if product is None or not await _owns(session, owner, product):
        raise NotFound("No such product")
    return product


async def _owns(session: AsyncSession, principal: Principal | None, product: Product) -> bool:
    if principal is None or principal.role not in ("grower", "admin"):
        return False
    if principal.role == "admin":
        return True
    owner_id = await session.scalar(select(Shop.owner_id).where(Shop.id == product.shop_id))
    return owner_id == principal.sub


async def update(session: AsyncSession, product: Product, data: ProductUpdate) -> Product:
    for name, value in data.model_dump(exclude_unset=True, exclude={"variants"}).items():
        if value is not None:
            setattr(product, name, value)
    if data.variants is not None:
        current = {v.id: v for v in product.variants}
        kept: set[int] = set()
        for position, incoming in enumerate(data.variants):
            if incoming.id is None:
                product.variants.append(Variant(**_variant_fields(incoming, position)))
                continue
            variant = current.get(incoming.id)
            if variant is None:
                raise UnprocessableEntity("A variant id does not belong to this product", errors=[{
                    "field": f"body.variants[{position}].id", "message": "not a variant of this product",
                    "type": "unknown_variant"}])
            for name, value in _variant_fields(incoming, position).items():
                setattr(variant, name, value)
            variant.archived = False
            kept.add(variant.id)
        for variant_id, variant in current.items():
            if variant_id not in kept:
                variant.archived = True
    _index(product)
    product.updated_at = utcnow()
    await session.commit()
    await session.refresh(product, ["variants"])
    return product


async def archive(session: AsyncSession, product: Product) -> None:
    product.status = ProductStatus.archived
    product.updated_at = utcnow()
    await session.commit()


async def list_products(session: AsyncSession, *, shop_id: int | None, category: Category | None,
                        owner: Principal | None, status: ProductStatus | None, limit: int,
                        cursor: str | None) -> tuple[list[Product], str | None]:
    """Active products newest first; with ``owner``, that grower's products in any status."""
    stmt = select(Product)
    if owner is not None:
        shop = await shops.get_owned(session, owner)
        stmt = stmt.where(Product.shop_id == shop.id)
        if status is not None:
            stmt = stmt.where(Product.status == status)
    else:
        stmt = stmt.where(Product.status == ProductStatus.active)
        if shop_id is not None:
            stmt = stmt.where(Product.shop_id == shop_id)
    if category is not None:
        stmt = stmt.where(Product.category == category)
    after = decode_cursor(cursor)
    if after is not None:
        before_id = after.get("id")
        if not isinstance(before_id, int):
            raise UnprocessableEntity("The cursor is not one this API gave out")
        stmt = stmt.where(Product.id < before_id)
    rows = (await session.scalars(stmt.order_by(Product.id.desc()).limit(limit + 1))).all()
    next_cursor = encode_cursor({"id": rows[limit - 1].id}) if len(rows) > limit else None
    return list(rows[:limit]), next_cursor

"""Varieties (products) and the ways each is sold (variants), with their prices and stock."""

import datetime as dt
import enum

from sqlalchemy import JSON, CheckConstraint, Column, Index, String
from sqlalchemy import false as sa_false
from sqlmodel import Field, Relationship

from services.catalog.base import CatalogModel
from services.catalog.photos.models import Photo
from services.catalog.shops.models import timestamp, utcnow


class Category(enum.StrEnum):
    water_lily = "water_lily"
    lotus = "lotus"
    aquatic = "aquatic"
    seedling = "seedling"
    supplies = "supplies"
    other = "other"


class ProductStatus(enum.StrEnum):
    draft = "draft"
    active = "active"
    archived = "archived"


class Variant(CatalogModel, table=True):
    """How a variety is sold: a tuber, a seedling, a 30 cm pot — each with its own prices and stock."""

    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="ck_variants_stock_nonnegative"),
        CheckConstraint("retail_price > 0", name="ck_variants_retail_price_positive"),
        CheckConstraint("min_order_quantity >= 1", name="ck_variants_min_order_positive"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="products.id", ondelete="CASCADE", index=True)
    position: int = Field(default=0)
    label: str = Field(max_length=80)
    retail_price: int
    wholesale_tiers: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    min_order_quantity: int = Field(default=1)
    stock: int = Field(default=0)
    low_stock_threshold: int = Field(default=0, description="stock.low fires when stock falls below it")
    weight_grams: int | None = Field(default=None)
    archived: bool = Field(default=False, description="Removed by the grower; kept for past orders")

    product: "Product" = Relationship(back_populates="variants")


class Product(CatalogModel, table=True):
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_shop_status", "shop_id", "status"),
        # Browsing by price: keyset pages over (min_price, id) among active products.
        Index("ix_products_status_min_price", "status", "min_price", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    name: str = Field(max_length=160)
    description: str = Field(default="", max_length=8000)
    category: str = Field(default=Category.water_lily, sa_type=String(20))
    status: str = Field(default=ProductStatus.draft, sa_type=String(20))
    # Search and browse (services/catalog/search.py, docs/decisions/0004-search.md). Kept by
    # products.service: the folded words of the name, and of name + description + the shop's name and
    # province; the lowest retail price and whether anything is in stock, over non-archived variants.
    search_name: str = Field(default="", max_length=200, description="Folded words of the name")
    search_text: str = Field(default="", max_length=9000,
                             description="Folded words of name, description, shop name and province")
    min_price: int = Field(default=0, sa_column_kwargs={"server_default": "0"},
                           description="Lowest retail price of the non-archived variants (VND)")
    in_stock: bool = Field(default=False, sa_column_kwargs={"server_default": sa_false()},
                           description="Some non-archived variant has stock")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())

    variants: list[Variant] = Relationship(
        back_populates="product",
        sa_relationship_kwargs={"order_by": "Variant.position", "lazy": "selectin", "cascade": "all, delete-orphan"},
    )
    # Cover first. Read-only here: photos are added, moved and deleted by services/catalog/photos.
    photos: list[Photo] = Relationship(
        sa_relationship_kwargs={"order_by": "Photo.position", "lazy": "selectin", "viewonly": True},
    )

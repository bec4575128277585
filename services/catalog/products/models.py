"""Varieties (products) and the ways each is sold (variants), with their prices and stock."""

import datetime as dt
import enum

from sqlalchemy import JSON, CheckConstraint, Column, Index, String
from sqlmodel import Field, Relationship, SQLModel

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


class Variant(SQLModel, table=True):
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


class Product(SQLModel, table=True):
    __tablename__ = "products"
    __table_args__ = (Index("ix_products_shop_status", "shop_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    name: str = Field(max_length=160)
    description: str = Field(default="", max_length=8000)
    category: str = Field(default=Category.water_lily, sa_type=String(20))
    status: str = Field(default=ProductStatus.draft, sa_type=String(20))
    search_text: str = Field(default="", max_length=9000, description="Accent-free name and description")
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())

    variants: list[Variant] = Relationship(
        back_populates="product",
        sa_relationship_kwargs={"order_by": "Variant.position", "lazy": "selectin", "cascade": "all, delete-orphan"},
    )

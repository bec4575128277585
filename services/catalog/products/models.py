"""Varieties (products) and the ways each is sold (variants), with their prices and stock."""

import datetime as dt
import enum

from pydantic import BaseModel
from pydantic import Field as PydField
from sqlalchemy import JSON, CheckConstraint, Column, DateTime, Index, String, func
from sqlmodel import Field, Relationship, SQLModel

from services.catalog.shops.models import utcnow


class Category(enum.StrEnum):
    water_lily = "water_lily"
    lotus = "lotus"
    aquatic = "aquatic"
    seedling = "seedling"
    other = "other"


class ProductStatus(enum.StrEnum):
    draft = "draft"
    active = "active"
    archived = "archived"


class WholesaleTier(BaseModel):
    min_quantity: int = PydField(ge=2, le=1_000_000)
    unit_price: int = PydField(gt=0, le=1_000_000_000, description="VND per unit")


class VariantBase(SQLModel):
    label: str = Field(max_length=80, description='How it is sold: "Củ giống", "Cây con", "Chậu 30 cm"')
    retail_price: int = Field(gt=0, le=1_000_000_000, description="VND per unit")
    min_order_quantity: int = Field(default=1, ge=1, le=100_000)
    stock: int = Field(default=0, ge=0, le=1_000_000)
    weight_grams: int | None = Field(default=None, ge=0, le=1_000_000)


class Variant(VariantBase, table=True):
    __tablename__ = "variants"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="ck_variants_stock_nonnegative"),
        CheckConstraint("retail_price > 0", name="ck_variants_retail_price_positive"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="products.id", ondelete="CASCADE", index=True)
    position: int = Field(default=0)
    wholesale_tiers: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))

    product: "Product" = Relationship(back_populates="variants")


class ProductBase(SQLModel):
    name: str = Field(max_length=160)
    description: str = Field(default="", max_length=8000)
    category: Category = Field(default=Category.water_lily, sa_type=String(20))
    status: ProductStatus = Field(default=ProductStatus.draft, sa_type=String(20))


class Product(ProductBase, table=True):
    __tablename__ = "products"
    __table_args__ = (Index("ix_products_shop_status", "shop_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    shop_id: int = Field(foreign_key="shops.id", ondelete="CASCADE")
    search_text: str = Field(default="", max_length=9000, description="Accent-free name and description")
    created_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )
    updated_at: dt.datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now())
    )

    variants: list[Variant] = Relationship(
        back_populates="product",
        sa_relationship_kwargs={"order_by": "Variant.position", "lazy": "selectin", "cascade": "all, delete-orphan"},
    )


class VariantPublic(VariantBase):
    id: int
    wholesale_tiers: list[WholesaleTier]


class ProductPublic(ProductBase):
    id: int
    shop_id: int
    url: str
    variants: list[VariantPublic]
    created_at: dt.datetime
    updated_at: dt.datetime

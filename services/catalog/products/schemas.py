"""What the product endpoints accept and reply. Prices are integer VND."""

import datetime as dt
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from common.params import StrictBody
from common.text import CleanText, NonEmptyText
from services.catalog.photos.schemas import PhotoPublic
from services.catalog.products.models import Category, ProductStatus

MAX_PRICE = 1_000_000_000
MAX_QUANTITY = 1_000_000
Price = Annotated[int, Field(gt=0, le=MAX_PRICE, strict=True, description="VND per unit")]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY, strict=True)]


class WholesaleTier(StrictBody):
    min_quantity: int = Field(ge=2, le=MAX_QUANTITY, strict=True, description="From this many units on…")
    unit_price: Price


class VariantIn(StrictBody):
    id: int | None = Field(None, strict=True, description="An existing variant to keep (on update; the "
                           "fields not sent keep their values); absent: a new one")
    label: NonEmptyText = Field(min_length=1, max_length=80, description='"Củ giống", "Cây con", "Chậu 30 cm"')
    retail_price: Price
    wholesale_tiers: list[WholesaleTier] = Field(default_factory=list, max_length=10)
    min_order_quantity: Quantity = 1
    stock: int = Field(0, ge=0, le=MAX_QUANTITY, strict=True)
    low_stock_threshold: int = Field(0, ge=0, le=MAX_QUANTITY, strict=True)
    weight_grams: int | None = Field(None, ge=0, le=1_000_000, strict=True)

    @model_validator(mode="after")
    def _tiers(self) -> "VariantIn":
        previous_qty, previous_price = 0, self.retail_price
        for tier in self.wholesale_tiers:
            if tier.min_quantity <= previous_qty:
                raise ValueError("wholesale_tiers: minimum quantities must rise from tier to tier")
            if tier.unit_price >= previous_price:
                raise ValueError("wholesale_tiers: each tier's unit price must be below the retail price "
                                 "and the tier before it")
            previous_qty, previous_price = tier.min_quantity, tier.unit_price
        return self


class ProductFields(StrictBody):
    name: NonEmptyText = Field(min_length=1, max_length=160)
    description: CleanText = Field("", max_length=8000)
    category: Category = Category.water_lily
    status: ProductStatus = ProductStatus.draft


class ProductCreate(ProductFields):
    variants: list[VariantIn] = Field(min_length=1, max_length=20)


class ProductUpdate(StrictBody):
    """Fields left out stay as they are. ``variants``, when given, is the whole new list: variants
    it leaves out are archived (kept for past orders), those with an ``id`` are changed."""

    name: NonEmptyText | None = Field(None, min_length=1, max_length=160)
    description: CleanText | None = Field(None, max_length=8000)
    category: Category | None = None
    status: ProductStatus | None = None
    variants: list[VariantIn] | None = Field(None, min_length=1, max_length=20)


class VariantPublic(BaseModel):
    id: int
    label: str
    retail_price: int
    wholesale_tiers: list[WholesaleTier]
    min_order_quantity: int
    stock: int
    in_stock: bool
    low_stock_threshold: int = 0
    weight_grams: int | None


class ProductPublic(BaseModel):
    id: int
    shop_id: int
    url: str
    name: str
    description: str
    category: Category
    status: ProductStatus
    min_price: int = Field(description="The lowest retail price of its variants (VND): 'from …'")
    in_stock: bool = Field(description="Some variant has stock")
    variants: list[VariantPublic]
    photos: list[PhotoPublic] = Field(default_factory=list, description="Cover first; see /products/{id}/photos")
    created_at: dt.datetime
    updated_at: dt.datetime

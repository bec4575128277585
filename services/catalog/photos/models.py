"""A photo of a variety. The files themselves live in the photo store, named by ``content_hash``."""

import datetime as dt

from sqlalchemy import UniqueConstraint
from sqlmodel import Field

from services.catalog.base import CatalogModel
from services.catalog.shops.models import timestamp, utcnow

MAX_PHOTOS_PER_PRODUCT = 10


class Photo(CatalogModel, table=True):
    __tablename__ = "photos"
    __table_args__ = (
        # Positions are dense from 0 (changes take turns under a lock on the product; this is the last fence).
        UniqueConstraint("product_id", "position", name="uq_photos_product_position"),
        # The same picture twice on one variety is a retried upload: answered with the first one.
        UniqueConstraint("product_id", "content_hash", name="uq_photos_product_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    product_id: int = Field(foreign_key="products.id", ondelete="CASCADE")  # indexed by the constraints
    position: int = Field(default=0, description="0 is the cover, shown first and in link previews")
    content_hash: str = Field(max_length=64, index=True, description="sha256 of the stored files, hex")
    width: int = Field(description="Of the upright picture as uploaded (before resizing)")
    height: int
    created_at: dt.datetime = Field(default_factory=utcnow, sa_column=timestamp())

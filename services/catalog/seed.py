"""A demo nursery so that `make run` shows a living shop. Fictional; safe to run again."""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from sqlalchemy import select

from common.db import Database
from services.catalog import search
from services.catalog.app import MIGRATIONS
from services.catalog.photos.models import Photo
from services.catalog.photos.processing import process
from services.catalog.photos.storage import LocalPhotoStore
from services.catalog.products.models import Category, Product, ProductStatus, Variant
from services.catalog.settings import CatalogSettings
from services.catalog.shops.models import Shop

# The gateway's seed makes the grower account with this id (phone 0912 000 111).
DEMO_GROWER_ID = "00000000-0000-4000-8000-000000000001"
DEMO_SHOP_SLUG = "vuon-sung-co-ut"

DEMO_SHOP = dict(
    slug=DEMO_SHOP_SLUG, owner_id=DEMO_GROWER_ID, name="Vườn Súng Cô Út", zalo_phone="+84912000111",
    delivery={"pickup": True, "flat_fee": 35_000, "fee_by_province": {"92": 20_000}, "free_above": 1_000_000},
    min_order_value=50_000,
    description="Vườn súng và sen nhỏ của gia đình ở Cần Thơ: củ giống, cây con và chậu súng đã ra hoa. "
                "Giao hàng toàn quốc, nhận sỉ cho nhà vườn và quán cà phê.",
    province_code="92", ward_code="31135", street="Hẻm 12, đường Ba Tháng Hai", phone="+84912000111",
)

# (name, category, description, [(label, retail, [(min_qty, unit)], min_order, stock)])
DEMO_PRODUCTS = [
    ("Súng Thái đỏ", Category.water_lily, "Hoa đỏ thắm, nở ngày, ra hoa quanh năm.",
     [("Củ giống", 45_000, [(10, 38_000), (50, 32_000)], 1, 120), ("Chậu 30 cm", 150_000, [(5, 130_000)], 1, 25)]),
    ("Súng Mỹ vàng", Category.water_lily, "Súng vàng chanh, lá đốm, hợp hồ nhỏ.",
     [("Củ giống", 55_000, [(10, 47_000)], 1, 80)]),
    ("Súng Ấn Độ tím", Category.water_lily, "Hoa tím nhạt thơm nhẹ, nở đêm.",
     [("Cây con", 60_000, [(10, 52_000), (30, 48_000)], 2, 60)]),
    ("Sen Nhật mini", Category.lotus, "Sen bát dáng nhỏ, trồng chậu ban công.",
     [("Ngó giống", 90_000, [(5, 80_000)], 1, 40), ("Chậu 40 cm", 350_000, [], 1, 8)]),
    ("Sen Quan Âm", Category.lotus, "Sen trắng viền hồng, cánh kép.",
     [("Ngó giống", 120_000, [(5, 105_000)], 1, 30)]),
    ("Bèo Nhật", Category.aquatic, "Lọc nước hồ cá, ra hoa tím.",
     [("Bó 10 cây", 25_000, [(10, 20_000)], 1, 200)]),
    ("Rong đuôi chó", Category.aquatic, "Cây thủy sinh tạo oxy cho hồ.",
     [("Bó 20 cây", 30_000, [(10, 24_000)], 1, 150)]),
    ("Súng lai Đồng Tháp", Category.seedling, "Cây con từ hạt, màu hoa ngẫu nhiên.",
     [("Khay 10 cây", 80_000, [(5, 70_000)], 1, 0)]),
]


# The picture each demo variety gets (services/catalog/demo_photos.py): a flower's colour, or "plants".
DEMO_PICTURES = {"Súng Thái đỏ": "red", "Súng Mỹ vàng": "yellow", "Súng Ấn Độ tím": "purple",
                 "Sen Nhật mini": "pink", "Sen Quan Âm": "white", "Bèo Nhật": "plants", "Rong đuôi chó": "plants",
                 "Súng lai Đồng Tháp": "pink"}


async def add_demo_photo(session, store: LocalPhotoStore, product: Product, index: int) -> None:
    """The variety's drawn picture, processed and stored as an upload would be (every size, WebP and
    the link preview's JPEG)."""
    from services.catalog import demo_photos  # here: the server imports this module, Pillow only for a seed

    kind = DEMO_PICTURES.get(product.name, "pink")
    data = demo_photos.plants(index) if kind == "plants" else demo_photos.flower(kind, index)
    with tempfile.NamedTemporaryFile(suffix=".jpg") as fh:
        fh.write(data)
        fh.flush()
        processed = process(Path(fh.name), "jpeg")
    for name, content in processed.files.items():
        await store.save(name, content)
    session.add(Photo(product_id=product.id, position=0, content_hash=processed.content_hash,
                      width=processed.width, height=processed.height))


async def seed(settings: CatalogSettings) -> str:
    db = Database(settings.database_url, MIGRATIONS, **settings.pool())
    await db.migrate()
    try:
        async with db.sessionmaker() as session, session.begin():
            existing = await session.scalar(select(Shop).where(Shop.slug == DEMO_SHOP_SLUG))
            if existing is not None:
                return f"catalog: demo nursery already there ({settings.public_base_url}/s/{DEMO_SHOP_SLUG})"
            shop = Shop(**DEMO_SHOP, search_text=search.shop_document(
                DEMO_SHOP["name"], DEMO_SHOP["description"], DEMO_SHOP["province_code"]))
            session.add(shop)
            await session.flush()
            for name, category, description, variants in DEMO_PRODUCTS:
                search_name, search_text = search.product_documents(
                    name, description, shop.name, shop.province_code)
                product = Product(shop_id=shop.id, name=name, category=category, description=description,
                                  status=ProductStatus.active, search_name=search_name, search_text=search_text,
                                  min_price=min(v[1] for v in variants), in_stock=any(v[4] > 0 for v in variants))
                product.variants = [
                    Variant(label=label, retail_price=retail, min_order_quantity=min_order, stock=stock,
                            position=i, low_stock_threshold=5,
                            wholesale_tiers=[{"min_quantity": q, "unit_price": p} for q, p in tiers])
                    for i, (label, retail, tiers, min_order, stock) in enumerate(variants)
                ]
                session.add(product)
            await session.flush()
            store = LocalPhotoStore(Path(settings.media_dir))
            for index, product in enumerate((await session.scalars(
                    select(Product).where(Product.shop_id == shop.id).order_by(Product.id))).all()):
                await add_demo_photo(session, store, product, index)
        return f"catalog: demo nursery seeded ({settings.public_base_url}/s/{DEMO_SHOP_SLUG})"
    finally:
        await db.dispose()


def add_seed_command():
    def configure(_: argparse.ArgumentParser) -> None:
        pass

    def run(_: argparse.Namespace, settings: CatalogSettings) -> None:
        print(asyncio.run(seed(settings)))

    return configure, run

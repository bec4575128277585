"""Opening and running a shop. Endpoints call these."""

from __future__ import annotations

import secrets

from pydantic import Field
from sqlalchemy import Float, column, func, literal_column, select, table, text, tuple_
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import type_coerce

from common.auth import Principal
from common.crypto import FieldCipher
from common.db import flush_unique
from common.errors import Conflict, NotFound, UnprocessableEntity
from common.pagination import Cursor, CursorId, keyset_page, next_page
from common.text import fold
from common.vietnam import BANKS, province_name, ward_name
from services.catalog import search
from services.catalog.products.models import Product
from services.catalog.shops.models import Shop, utcnow
from services.catalog.shops.schemas import BankAccount, Delivery, ShopCreate, ShopPrivate, ShopPublic, ShopUpdate


def slugify(name: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in fold(name)).split()
    slug = "-".join(words)[:50].strip("-")
    return slug if len(slug) >= 3 else f"vuon-{slug}".strip("-")


def to_public(shop: Shop, base_url: str) -> ShopPublic:
    return ShopPublic(
        id=shop.id, slug=shop.slug, url=f"{base_url}/s/{shop.slug}", name=shop.name,
        description=shop.description, province_code=shop.province_code,
        province_name=province_name(shop.province_code), ward_code=shop.ward_code,
        ward_name=ward_name(shop.province_code, shop.ward_code), street=shop.street, phone=shop.phone,
        zalo_phone=shop.zalo_phone, delivery=Delivery.model_validate(shop.delivery or {}),
        min_order_value=shop.min_order_value, bank_name=BANKS.get(shop.bank_bin or ""),
        created_at=shop.created_at,
    )


def to_private(shop: Shop, base_url: str) -> ShopPrivate:
    return ShopPrivate(**to_public(shop, base_url).model_dump(), bank_bin=shop.bank_bin,
                       bank_account_last4=shop.bank_account_last4, bank_holder=shop.bank_holder,
                       owner_id=shop.owner_id)


def _set_bank(shop: Shop, bank: BankAccount, cipher: FieldCipher) -> None:
    shop.bank_bin = bank.bin
    shop.bank_account_encrypted = cipher.encrypt(bank.account_number)
    shop.bank_account_last4 = bank.account_number[-4:]
    shop.bank_holder = bank.holder


def _index(shop: Shop) -> None:
    shop.search_text = search.shop_document(shop.name, shop.description, shop.province_code)


async def _reindex_products(session: AsyncSession, shop: Shop) -> None:
    """A variety's search text holds its shop's name and province: refresh them when those change."""
    rows = (await session.execute(
        select(Product.id, Product.name, Product.description).where(Product.shop_id == shop.id))).all()
    for product_id, name, description in rows:
        _, text_ = search.product_documents(name, description, shop.name, shop.province_code)
        await session.execute(sql_update(Product).where(Product.id == product_id).values(search_text=text_)
                              .execution_options(synchronize_session=False))


async def create(session: AsyncSession, owner: Principal, data: ShopCreate, *, cipher: FieldCipher) -> Shop:
    if await session.scalar(select(Shop.id).where(Shop.owner_id == owner.sub)) is not None:
        raise Conflict("You already have a shop; a grower has one shop")
    slug = data.slug or slugify(data.name)
    if data.slug is None and await session.scalar(select(Shop.id).where(Shop.slug == slug)) is not None:
        slug = f"{slug[:44]}-{secrets.token_hex(2)}"
    shop = Shop(owner_id=owner.sub, slug=slug, **data.model_dump(exclude={"slug", "bank", "delivery"}),
                delivery=data.delivery.model_dump())
    if data.bank:
        _set_bank(shop, data.bank, cipher)
    _index(shop)
    session.add(shop)
    await flush_unique(session, Conflict("This address (slug) is taken; choose another", field="body.slug"))
    return shop


async def get(session: AsyncSession, shop_id: int) -> Shop:
    shop = await session.get(Shop, shop_id)
    if shop is None:
        raise NotFound("No such shop")
    return shop


async def get_by_slug(session: AsyncSession, slug: str) -> Shop:
    shop = await session.scalar(select(Shop).where(Shop.slug == slug))
    if shop is None:
        raise NotFound("No such shop")
    return shop


async def get_owned(session: AsyncSession, owner: Principal, shop_id: int | None = None) -> Shop:
    """The caller's shop (checked against ``shop_id`` when given); another's answers 404."""
    shop = await session.scalar(select(Shop).where(Shop.owner_id == owner.sub))
    if shop is None or (shop_id is not None and shop.id != shop_id):
        raise NotFound("No such shop" if shop_id is not None else "You have no shop yet; open one first")
    return shop


async def update(session: AsyncSession, shop: Shop, data: ShopUpdate, *, cipher: FieldCipher) -> Shop:
    before = (shop.name, shop.province_code)
    changes = data.model_dump(exclude_unset=True, exclude={"bank", "delivery"})
    for name, value in changes.items():
        if value is None and name not in ("zalo_phone",):
            continue
        setattr(shop, name, value)
    if data.delivery is not None:
        shop.delivery = data.delivery.model_dump()
    if data.bank is not None:
        _set_bank(shop, data.bank, cipher)
    if province_name(shop.province_code) is None or ward_name(shop.province_code, shop.ward_code) is None:
        raise UnprocessableEntity("The ward is not in the province", errors=[
            {"field": "body.ward_code", "message": "not a ward of this province", "type": "ward_mismatch"}])
    reindex = shop.name != before[0] or shop.province_code != before[1]
    _index(shop)
    if reindex:
        await _reindex_products(session, shop)
    shop.updated_at = utcnow()
    await session.flush()
    return shop


SHOPS_FTS = table("shops_fts", column("rowid"))


class ScoreCursor(Cursor):
    """Shops found by words: the last one's relevance and id."""

    k: float = Field(allow_inf_nan=False)
    id: CursorId


async def list_shops(session: AsyncSession, *, province_code: str | None, limit: int, cursor: str | None,
                     q: str | None = None, slug: str | None = None) -> tuple[list[Shop], str | None]:
    """Shops in id order; with ``q``, those whose name, description or province has the words, most
    relevant first (FTS5 bm25 on SQLite, trigram similarity on PostgreSQL). Keyset pages. With
    ``slug``, the shop whose public page is ``/s/{slug}`` (a page of one, or none)."""
    query = search.Query.parse(q)
    stmt = select(Shop)
    if slug is not None:
        stmt = stmt.where(Shop.slug == slug)
    if province_code:
        stmt = stmt.where(Shop.province_code == province_code)
    if query is None:
        return await keyset_page(session, stmt, Shop.id, limit, cursor, newest_first=False)

    if session.get_bind().dialect.name == "sqlite":
        stmt = stmt.join(SHOPS_FTS, SHOPS_FTS.c.rowid == Shop.id).where(
            text("shops_fts MATCH :fts_query").bindparams(fts_query=query.fts5()))
        score = type_coerce(-func.bm25(literal_column("shops_fts")), Float)
    else:
        stmt = stmt.where(*[Shop.search_text.like(p) for p in query.like_patterns()])
        score = type_coerce(func.similarity(Shop.search_text, query.text), Float)
    after = ScoreCursor.decode(cursor)
    if after is not None:
        stmt = stmt.where(tuple_(score, Shop.id) < tuple_(after.k, after.id))
    rows = (await session.execute(stmt.add_columns(score.label("score"))
                                  .order_by(score.desc(), Shop.id.desc()).limit(limit + 1))).all()
    page, next_cursor = next_page(rows, limit, lambda row: ScoreCursor(k=float(row[1]), id=row[0].id))
    return [r[0] for r in page], next_cursor

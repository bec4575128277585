"""Listing and changing varieties. Endpoints call these; they never build queries themselves."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import Field
from sqlalchemy import and_, column, exists, false, func, not_, or_, select, table, text, true, tuple_
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql import ColumnElement

from common.auth import Principal
from common.errors import NotFound, UnprocessableEntity
from common.pagination import Cursor, CursorId, bad_cursor, next_page
from services.catalog import search
from services.catalog.photos.schemas import photos_of
from services.catalog.products.models import Category, Product, ProductStatus, Variant
from services.catalog.products.schemas import (
    MAX_PRICE,
    ProductCreate,
    ProductPublic,
    ProductUpdate,
    VariantIn,
    VariantPublic,
    WholesaleTier,
)
from services.catalog.shops import service as shops
from services.catalog.shops.models import Shop, utcnow


def to_public(product: Product, base_url: str) -> ProductPublic:
    return ProductPublic(
        id=product.id, shop_id=product.shop_id, url=f"{base_url}/p/{product.id}", name=product.name,
        description=product.description, category=product.category, status=product.status,
        min_price=product.min_price, in_stock=product.in_stock,
        created_at=product.created_at, updated_at=product.updated_at,
        variants=[VariantPublic(id=v.id, label=v.label, retail_price=v.retail_price,
                                wholesale_tiers=[WholesaleTier(**t) for t in v.wholesale_tiers],
                                min_order_quantity=v.min_order_quantity, stock=v.stock, in_stock=v.stock > 0,
                                low_stock_threshold=v.low_stock_threshold, weight_grams=v.weight_grams)
                  for v in product.variants if not v.archived],
        photos=photos_of(product, base_url),
    )


def _index(product: Product, shop: Shop) -> None:
    """The folded words buyers find the variety by; the shop's name and province are part of them
    (shops.service refreshes them when the shop changes)."""
    product.search_name, product.search_text = search.product_documents(
        product.name, product.description, shop.name, shop.province_code)


def _listing(product: Product) -> None:
    """The price and stock a listing shows, filters and sorts by: over the non-archived variants."""
    live = [v for v in product.variants if not v.archived]
    product.min_price = min((v.retail_price for v in live), default=0)
    product.in_stock = any(v.stock > 0 for v in live)


async def refresh_listing(session: AsyncSession, product_ids: int | list[int] | set[int]) -> None:
    """Recompute ``min_price`` and ``in_stock`` in SQL, for code that changes variants with
    statements rather than through the ORM (reservations: stock). Runs in the caller's transaction."""
    ids = [product_ids] if isinstance(product_ids, int) else sorted(set(product_ids))
    if not ids:
        return
    # The products' rows locked first, in id order, and the values computed by the next statement:
    # on PostgreSQL (read committed) it sees every transaction that held them and committed. Without
    # the lock two reservations selling out a product's last two variants at once each saw the
    # other's old stock, and the product stayed "in stock". (SQLite runs one writer at a time.)
    await session.execute(select(Product.id).where(Product.id.in_(ids)).order_by(Product.id).with_for_update())
    live = and_(Variant.product_id == Product.id, Variant.archived == false())
    min_price = func.coalesce(select(func.min(Variant.retail_price)).where(live).scalar_subquery(), 0)
    in_stock = exists().where(live, Variant.stock > 0)
    # Only rows whose values change are written (and, on PostgreSQL, locked): a reservation that
    # leaves some stock touches no product row at all.
    await session.execute(
        sql_update(Product).where(Product.id.in_(ids), or_(Product.min_price != min_price,
                                                            Product.in_stock != in_stock))
        .values(min_price=min_price, in_stock=in_stock).execution_options(synchronize_session=False))


def _variant_fields(data: VariantIn, position: int, *, only_sent: bool = False) -> dict:
    """The columns of a variant from its input; ``only_sent``: just the fields the caller sent (an
    update of an existing variant keeps its stock, threshold, weight and tiers unless they are sent)."""
    fields = data.model_dump(exclude={"id", "wholesale_tiers"}, exclude_unset=only_sent)
    if not only_sent or "wholesale_tiers" in data.model_fields_set:
        fields["wholesale_tiers"] = [t.model_dump() for t in data.wholesale_tiers]
    fields["position"] = position
    return fields


async def create(session: AsyncSession, owner: Principal, data: ProductCreate) -> Product:
    shop = await shops.get_owned(session, owner)
    product = Product(shop_id=shop.id, **data.model_dump(exclude={"variants"}))
    product.variants = [Variant(**_variant_fields(v, i)) for i, v in enumerate(data.variants)]
    _index(product, shop)
    _listing(product)
    session.add(product)
    await session.flush()
    return product


async def get_visible(session: AsyncSession, product_id: int, viewer: Principal | None) -> Product:
    """Active products for everyone; drafts and archived ones for their owner only (else 404)."""
    product = await session.get(Product, product_id)
    if product is None:
        raise NotFound("No such product")
    if product.status != ProductStatus.active and not await _owns(session, viewer, product):
        raise NotFound("No such product")
    return product


async def active_by_ids(session: AsyncSession, product_ids: list[int]) -> list[Product]:
    """The active ones of these varieties (any order), their variants and photos loaded."""
    if not product_ids:
        return []
    stmt = select(Product).where(Product.id.in_(product_ids), Product.status == ProductStatus.active)
    return list((await session.scalars(stmt)).all())


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
            for name, value in _variant_fields(incoming, position, only_sent=True).items():
                setattr(variant, name, value)
            if any(t["unit_price"] >= variant.retail_price for t in variant.wholesale_tiers or []):
                raise UnprocessableEntity("A wholesale price would not be below the retail price", errors=[{
                    "field": f"body.variants[{position}].retail_price",
                    "message": "each wholesale tier's unit price must be below the retail price",
                    "type": "tiers_above_retail"}])
            variant.archived = False
            kept.add(variant.id)
        for variant_id, variant in current.items():
            if variant_id not in kept:
                variant.archived = True
    _index(product, await shops.get(session, product.shop_id))
    _listing(product)
    product.updated_at = utcnow()
    await session.flush()
    await session.refresh(product, ["variants"])
    return product


async def archive(session: AsyncSession, product: Product) -> None:
    product.status = ProductStatus.archived
    product.updated_at = utcnow()


class Sort(enum.StrEnum):
    relevance = "relevance"
    newest = "newest"
    price_asc = "price_asc"
    price_desc = "price_desc"


@dataclass(frozen=True)
class Filters:
    shop_id: int | None = None
    province_code: str | None = None
    category: Category | None = None
    min_price: int | None = None
    max_price: int | None = None
    in_stock: bool | None = None
    wholesale: bool | None = None  # true: some variant has a wholesale price; false: none has
    status: ProductStatus | None = None  # the owner's own list only; buyers see active varieties


PRODUCTS_FTS = table("products_fts", column("rowid"))


TextConditions = Callable[[ColumnElement, ColumnElement], list[ColumnElement]]


@dataclass(frozen=True)
class _Segment:
    """One ordered run of a listing. Relevance is two runs: the words in the name, then elsewhere."""

    tier: int | None
    fts: str | None = None  # SQLite: an FTS5 MATCH expression; the FTS table drives the query
    text: TextConditions | None = None  # LIKE conditions on (folded text, folded name) columns


def _match(fts_query: str) -> ColumnElement:
    return text("products_fts MATCH :fts_query").bindparams(fts_query=fts_query)


def _like_all(column_: ColumnElement, query: search.Query) -> ColumnElement:
    return and_(*[column_.like(pattern) for pattern in query.like_patterns()])


def _words_in(query: search.Query, where: str) -> TextConditions:
    def conditions(text_col: ColumnElement, name_col: ColumnElement) -> list[ColumnElement]:
        in_text = _like_all(text_col, query)
        if where == "anywhere":
            return [in_text]
        in_name = _like_all(name_col, query)
        # The name is part of the text: words in the name need no other condition (and so the
        # trigram index of the short names answers them alone).
        return [in_name] if where == "name" else [in_text, not_(in_name)]

    return conditions


async def _segments(session: AsyncSession, query: search.Query | None, sort: Sort, public: bool) -> list[_Segment]:
    """The runs that make up the listing, each read in the sort's order a page at a time.

    No plan ranks every match: each reads an index in the order of the page (keyset on the sort key
    and id) and stops after a page, so that a word in half the catalog costs a page of rows, not half
    the catalog (bench/search.py, docs/decisions/0004-search.md).
    """
    if query is None:
        return [_Segment(None)]
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sort == Sort.relevance:
        if sqlite:
            return [_Segment(1, fts=query.fts5_in_name()), _Segment(0, fts=query.fts5_not_in_name())]
        return [_Segment(1, text=_words_in(query, "name")), _Segment(0, text=_words_in(query, "elsewhere"))]
    if sqlite and sort == Sort.newest:
        return [_Segment(None, fts=query.fts5())]
    if sqlite:
        # By price: FTS5 gives rows in id order only. Few matches: take them all and sort. Many: walk
        # the (status, min_price, id) index and check each row's folded text with LIKE (the same words,
        # the same meaning), stopping after a page.
        probe = await session.scalar(text(
            "SELECT count(*) FROM (SELECT rowid FROM products_fts WHERE products_fts MATCH :q LIMIT :cap)"),
            {"q": query.fts5(), "cap": search.PROBE_CAP})
        if probe < search.PROBE_CAP or not public:
            return [_Segment(None, fts=query.fts5())]
    return [_Segment(None, text=_words_in(query, "anywhere"))]


def _order(sort: Sort, id_col: ColumnElement, price_col: ColumnElement) -> list[ColumnElement]:
    if sort == Sort.price_asc:
        return [price_col.asc(), id_col.asc()]
    if sort == Sort.price_desc:
        return [price_col.desc(), id_col.desc()]
    return [id_col.desc()]


def _after(sort: Sort, id_col: ColumnElement, price_col: ColumnElement, price: int | None,
           id_: int) -> ColumnElement:
    """Rows strictly after (price, id) in the sort's order: the keyset condition."""
    if sort == Sort.price_asc:
        return tuple_(price_col, id_col) > tuple_(price, id_)
    if sort == Sort.price_desc:
        return tuple_(price_col, id_col) < tuple_(price, id_)
    return id_col < id_


async def _read(session: AsyncSession, conditions: list[ColumnElement], segment: _Segment, sort: Sort,
                resume: tuple[int | None, int] | None, n: int, window: bool) -> list[Product]:
    """Up to ``n`` rows of one run, after ``resume`` (price, id) when given."""
    if segment.fts is not None:
        rowid = PRODUCTS_FTS.c.rowid  # FTS5 reads its index in rowid order: order by it, not by products.id
        stmt = (select(Product).join_from(PRODUCTS_FTS, Product, Product.id == rowid)
                .where(*conditions, _match(segment.fts)))
        if resume is not None:
            stmt = stmt.where(_after(sort, rowid, Product.min_price, *resume))
        return list((await session.scalars(stmt.order_by(*_order(sort, rowid, Product.min_price)).limit(n))).all())

    keyset = [_after(sort, Product.id, Product.min_price, *resume)] if resume is not None else []
    order = _order(sort, Product.id, Product.min_price)
    text_conditions = segment.text(Product.search_text, Product.search_name) if segment.text else []
    if not window or not text_conditions:
        stmt = select(Product).where(*conditions, *keyset, *text_conditions).order_by(*order).limit(n)
        return list((await session.scalars(stmt)).all())

    # PostgreSQL. Its estimates for several LIKEs multiply as if words were independent ("dong" and
    # "thap" are not), and a trigram index scan over a common word reads tens of thousands of rows.
    # So: first the next WINDOW rows in the page's order (an ordered btree), checked with LIKE; only
    # when they hold less than a page, the rest, where the words are rare enough for the GIN index.
    # A subquery with a LIMIT is read lazily and keeps its order: a page of common words stops after
    # a few dozen rows of the window.
    window_rows = (select(Product).where(*conditions, *keyset).order_by(*order).limit(search.PG_WINDOW)
                   .subquery("search_window"))
    in_window, c = aliased(Product, window_rows), window_rows.c
    # Conditions on the subquery's own columns: through the aliased entity, SQLAlchemy adapts every
    # column of every LIKE anew on each call (a tenth of the catalog's CPU under bench/load.py).
    stmt = (select(in_window).where(*segment.text(c.search_text, c.search_name))
            .order_by(*_order(sort, c.id, c.min_price)).limit(n))
    found = list((await session.scalars(stmt)).all())
    if len(found) >= n:
        return found
    edge = (await session.execute(select(Product.min_price, Product.id).where(*conditions, *keyset)
                                  .order_by(*order).offset(search.PG_WINDOW - 1).limit(1))).first()
    if edge is None:
        return found  # the window held every remaining row
    rest = (select(Product).where(*conditions, _after(sort, Product.id, Product.min_price, *edge), *text_conditions)
            .order_by(*order).limit(n - len(found)))
    return found + list((await session.scalars(rest)).all())


class ProductCursor(Cursor):
    """Where a page of varieties ended: its sort, the last one's id, its price (price sorts) and its
    run (relevance: 0 for the name, 1 for elsewhere)."""

    s: Sort
    id: CursorId
    k: int | None = Field(None, ge=0, le=MAX_PRICE)
    t: Literal[0, 1] | None = None

    def fits(self, sort: Sort) -> bool:
        return (self.s == sort and (self.k is not None) == (sort in (Sort.price_asc, Sort.price_desc))
                and (self.t is not None) == (sort == Sort.relevance))


async def list_products(session: AsyncSession, *, q: str | None = None, filters: Filters = Filters(),
                        sort: Sort | None = None, owner: Principal | None = None, limit: int = 20,
                        cursor: str | None = None) -> tuple[list[Product], str | None]:
    """Active varieties (or, with ``owner``, that grower's in any status), searched, filtered and
    sorted; keyset pages on (sort key, id), so that every sort pages without gaps or repeats.

    ``relevance``: varieties with all the words in their name first, then those with some of them
    elsewhere (description, shop name, province); newest first within each. Without words to search
    for it is ``newest`` (ids grow with creation).
    """
    query = search.Query.parse(q)
    sort = sort or (Sort.relevance if query else Sort.newest)
    if sort == Sort.relevance and query is None:
        sort = Sort.newest

    conditions: list[ColumnElement] = []
    if owner is not None:
        shop = await shops.get_owned(session, owner)
        conditions.append(Product.shop_id == shop.id)
        if filters.status is not None:
            conditions.append(Product.status == filters.status)
    else:
        conditions.append(Product.status == ProductStatus.active)
        if filters.shop_id is not None:
            conditions.append(Product.shop_id == filters.shop_id)
    if filters.province_code is not None:
        conditions.append(Product.shop_id.in_(select(Shop.id).where(Shop.province_code == filters.province_code)))
    if filters.category is not None:
        conditions.append(Product.category == filters.category)
    if filters.min_price is not None:
        conditions.append(Product.min_price >= filters.min_price)
    if filters.max_price is not None:
        conditions.append(Product.min_price <= filters.max_price)
    if filters.in_stock is not None:
        conditions.append(Product.in_stock == (true() if filters.in_stock else false()))
    if filters.wholesale is not None:
        tiered = exists().where(Variant.product_id == Product.id, Variant.archived == false(),
                                func.json_array_length(Variant.wholesale_tiers) > 0)
        conditions.append(tiered if filters.wholesale else ~tiered)

    after = ProductCursor.decode(cursor)
    if after is not None and not after.fits(sort):
        raise bad_cursor("not a cursor of this listing and sort order")
    after_key, after_tier = (after.k, after.t) if after is not None else (None, None)

    found: list[tuple[int | None, Product]] = []
    window = owner is None and session.get_bind().dialect.name != "sqlite"
    for segment in await _segments(session, query, sort, public=owner is None):
        if after is not None and segment.tier is not None and segment.tier > after_tier:
            continue  # a run the previous pages have finished
        resumes = after is not None and (segment.tier is None or segment.tier == after_tier)
        rows = await _read(session, conditions, segment, sort, (after_key, after.id) if resumes else None,
                           limit + 1 - len(found), window)
        found += [(segment.tier, p) for p in rows]
        if len(found) > limit:
            break

    page, next_cursor = next_page(found, limit, lambda row: ProductCursor(
        s=sort, id=row[1].id, t=row[0],
        k=row[1].min_price if sort in (Sort.price_asc, Sort.price_desc) else None))
    return [p for _, p in page], next_cursor

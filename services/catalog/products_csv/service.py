"""Importing a shop's products from CSV and exporting them to it. The command line calls these.

One row per variant; the rows of one product share its ``product_name``. Import in two passes:

1. Read and check every row as if every product were new (the API's schemas, ``ProductCreate`` and
   ``VariantIn``, decide what is valid). A product any of whose rows is bad is not stored.
2. Store each good product in its own savepoint: an existing product of the shop with the same name
   (NFC, case and spaces ignored) is updated, its variants matched by label, and checked again with
   the values it keeps from the database. Nothing of a product is stored unless all of it is.

Cells that a column leaves out, or blank cells of fields that always have a value (category, status,
min_order_quantity, stock, low_stock_threshold), keep what is stored; blank cells of fields that may
be empty (description, wholesale_tiers, weight_grams) empty them. See docs/operations.md.

Products are written with the products service's own steps (``_variant_fields``, ``_index``,
``_listing``), so that an imported variety is indexed for search and listed (lowest price, in stock)
exactly as one made through the API; its ``create`` and ``update`` commit, which a product's
savepoint and ``--all-or-nothing`` cannot have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from common.text import nfc
from services.catalog.products.models import Product, ProductStatus, Variant
from services.catalog.products.schemas import ProductCreate
from services.catalog.products.service import _index as index_product
from services.catalog.products.service import _listing as list_product
from services.catalog.products.service import _variant_fields as variant_fields
from services.catalog.products_csv.format import (
    CATEGORY_WORDS,
    COLUMNS,
    STATUS_WORDS,
    Row,
    RowError,
    choice,
    format_tiers,
    parse_int,
    parse_tiers,
    read_rows,
    shown,
    write_rows,
)
from services.catalog.shops.models import Shop, utcnow

Progress = Callable[[int, int], None]
"""Called with (rows done, rows in the file) as the import goes."""

KEEP: Any = type("Keep", (), {"__repr__": lambda self: "KEEP"})()
"""A field the file does not set: the stored value stays (a new product takes the schema's default)."""

PRODUCT_FIELDS = ("description", "category", "status")
VARIANT_INTS = ("min_order_quantity", "stock", "low_stock_threshold")


def match_key(text: str) -> str:
    """How names and labels are matched: NFC, case and runs of spaces ignored; accents count."""
    return " ".join(nfc(text).casefold().split())


@dataclass
class VariantRow:
    line: int
    label: str
    values: dict[str, Any]


@dataclass
class ProductRows:
    """The rows of one product in the file, in file order."""

    key: str
    name: str
    lines: list[int] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)
    field_lines: dict[str, int] = field(default_factory=dict)
    variants: list[VariantRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"line {self.lines[0]}" if len(self.lines) == 1 else f"lines {self.lines[0]}–{self.lines[-1]}"


@dataclass
class ImportReport:
    rows: int = 0
    products_created: int = 0
    products_updated: int = 0
    products_unchanged: int = 0
    products_rejected: int = 0
    variants_created: int = 0
    variants_updated: int = 0
    variants_archived: int = 0
    errors: list[RowError] = field(default_factory=list)
    stored: bool = True
    """False when nothing was kept: a dry run, or --all-or-nothing with a bad row."""

    @property
    def ok(self) -> bool:
        return not self.errors


# ---- pass 1: rows → products ----------------------------------------------------------------------

def group_rows(data: bytes) -> tuple[list[ProductRows], int]:
    """The file's products (each with its rows' errors) and its row count. Raises ``CsvFileError``."""
    header, rows = read_rows(data)
    products: dict[str, ProductRows] = {}
    orphans: list[ProductRows] = []
    current: ProductRows | None = None
    for row in rows:
        name = row.cells.get("product_name", "")
        if name:
            key = match_key(name)
            current = products.setdefault(key, ProductRows(key, name))
        elif current is None:
            # A blank product_name continues the product above; on the first row there is none.
            orphan = ProductRows("", "", lines=[row.line], errors=[*row.errors, RowError(
                row.line, "product_name", "required (a blank name continues the product of the row above)")])
            orphans.append(orphan)
            continue
        _add_row(current, row, header)
    for product in products.values():
        # The schemas check every product, as if new; a cell that could not be read already has its
        # error, and a row with a wrong number of cells gets no more (its cells are not where they belong).
        known = {(e.line, e.field) for e in product.errors}
        misshapen = {e.line for e in product.errors if e.field is None}
        _, errors = validate(product, None, [None] * len(product.variants))
        product.errors.extend(e for e in errors if e.line not in misshapen and (e.line, e.field) not in known)
        product.errors.sort(key=lambda e: e.line)
    return [*orphans, *products.values()], len(rows)


def _add_row(product: ProductRows, row: Row, header: list[str]) -> None:
    product.lines.append(row.line)
    product.errors.extend(row.errors)
    cells = row.cells
    if any(e.field is None for e in row.errors):
        # A wrong number of cells: they are not under their columns, so none is read. The row still
        # belongs to its product (by its name, or the row above), which is therefore not stored.
        product.variants.append(VariantRow(row.line, cells.get("variant_label", ""), {}))
        return
    for name in PRODUCT_FIELDS:
        if name not in header:
            continue
        cell = cells.get(name, "")
        if name == "description" and name not in product.fields:
            product.fields[name], product.field_lines[name] = "", row.line
        if not cell:
            continue
        if name == "category":
            value = choice(cell, CATEGORY_WORDS)
        elif name == "status":
            value = choice(cell, STATUS_WORDS)
        else:
            value = nfc(cell)
        earlier = product.fields.get(name)
        if earlier in (None, ""):
            product.fields[name], product.field_lines[name] = value, row.line
        elif earlier != value:
            product.errors.append(RowError(row.line, name, f"differs from line {product.field_lines[name]} for "
                                           "the same product (write it once, or the same on every row)"))

    label = cells.get("variant_label", "")
    for other in product.variants:
        if label and match_key(other.label) == match_key(label):
            product.errors.append(RowError(row.line, "variant_label", f"{shown(label)} is already on line "
                                           f"{other.line} for this product; each variant needs its own label"))
            break
    values: dict[str, Any] = {}
    price = cells.get("retail_price", "")
    if not price:
        product.errors.append(RowError(row.line, "retail_price", "required"))
    else:
        _parse(product, row.line, "retail_price", values, lambda: parse_int(price, money=True))
    if "wholesale_tiers" in header:
        _parse(product, row.line, "wholesale_tiers", values, lambda: parse_tiers(cells.get("wholesale_tiers", "")))
    else:
        values["wholesale_tiers"] = KEEP
    for name in VARIANT_INTS:
        cell = cells.get(name, "")
        if cell:
            _parse(product, row.line, name, values, lambda c=cell: parse_int(c))
        else:
            values[name] = KEEP
    if "weight_grams" in header:
        weight = cells.get("weight_grams", "")
        _parse(product, row.line, "weight_grams", values, lambda: parse_int(weight) if weight else None)
    else:
        values["weight_grams"] = KEEP
    product.variants.append(VariantRow(row.line, label, values))


def _parse(product: ProductRows, line: int, name: str, values: dict, parse: Callable[[], Any]) -> None:
    try:
        values[name] = parse()
    except ValueError as exc:
        product.errors.append(RowError(line, name, str(exc)))


# ---- checking with the schemas ----------------------------------------------------------------------

def validate(product: ProductRows, stored: Product | None,
             matched: list[Variant | None]) -> tuple[ProductCreate | None, list[RowError]]:
    """The product as it would be stored, checked by ``ProductCreate``; errors point at file lines."""
    body: dict[str, Any] = {"name": product.name}
    for name in PRODUCT_FIELDS:
        value = product.fields.get(name, KEEP)
        if value is KEEP:
            if stored is not None:
                body[name] = getattr(stored, name)
        else:
            body[name] = value
    variants = []
    for row, existing in zip(product.variants, matched, strict=True):
        item: dict[str, Any] = {"label": row.label}
        for name, value in row.values.items():
            if value is not KEEP:
                item[name] = value
            elif existing is not None:
                item[name] = getattr(existing, name)
        variants.append(item)
    body["variants"] = variants
    try:
        return ProductCreate.model_validate(body), []
    except ValidationError as exc:
        return None, [_row_error(product, matched, e) for e in exc.errors(include_url=False)]


def _row_error(product: ProductRows, matched: list[Variant | None], error: dict) -> RowError:
    loc, message = error["loc"], error["msg"].removeprefix("Value error, ")
    given = error.get("input")
    cell = f" (cell: {shown(given)})" if isinstance(given, str | int) and not isinstance(given, bool) else ""
    if loc == ("variants",):
        # Too many variants: point at the first row over the limit.
        limit = int(error.get("ctx", {}).get("max_length", len(product.variants)))
        line = product.variants[min(limit, len(product.variants) - 1)].line
        return RowError(line, "variant_label", f"a product has at most {limit} variants")
    if loc[:1] == ("variants",):
        row, existing = product.variants[int(loc[1])], matched[int(loc[1])]
        if len(loc) == 2:
            # The schema's checks across fields name the field first ("wholesale_tiers: …").
            name, _, rest = message.partition(":")
            message, cell = (rest.strip() if rest and name in COLUMNS else message), ""
        elif loc[2] == "wholesale_tiers" and len(loc) > 3:
            name, cell = "wholesale_tiers", ""
            message = f"tier {int(loc[3]) + 1}{f', {loc[4]}' if len(loc) > 4 else ''}: {message}"
        else:
            name = str(loc[2])
        name = "variant_label" if name == "label" else name
        if existing is not None and row.values.get(name) is KEEP:
            kept = getattr(existing, name)
            message += f" (the stored value was kept: {format_tiers(kept) if name == 'wholesale_tiers' else kept})"
        return RowError(row.line, name if name in COLUMNS else None, message + cell)
    name = "product_name" if loc[0] == "name" else str(loc[0])
    return RowError(product.field_lines.get(str(loc[0]), product.lines[0]), name, message + cell)


# ---- pass 2: storing -----------------------------------------------------------------------------

@dataclass
class _Counts:
    created: bool = False
    changed: bool = False
    variants_created: int = 0
    variants_updated: int = 0
    variants_archived: int = 0


class _Rejected(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors


async def import_products(session: AsyncSession, shop_id: int, data: bytes, *, all_or_nothing: bool = False,
                          dry_run: bool = False, progress: Progress | None = None) -> ImportReport:
    """Import a CSV file's products into a shop. Raises ``CsvFileError`` when the file cannot be read.

    By default each product is committed on its own: good products are stored, products with a bad
    row are not. ``all_or_nothing``: one transaction, committed only if every row is good.
    ``dry_run``: check everything (against the stored products too), write nothing.
    """
    products, rows = group_rows(data)
    report = ImportReport(rows=rows, stored=not dry_run)
    existing: dict[str, list[tuple[int, str]]] = {}
    for product_id, name, status in await session.execute(
            select(Product.id, Product.name, Product.status).where(Product.shop_id == shop_id)):
        existing.setdefault(match_key(name), []).append((product_id, status))
    done = 0
    for product in products:
        if product.errors:
            report.errors.extend(product.errors)
            report.products_rejected += 1
        else:
            candidates = existing.get(product.key, [])
            try:
                if dry_run:
                    # Worked out in memory and dropped: a dry run writes nothing, so on SQLite it
                    # never holds the write lock that the running shop's orders need.
                    with session.no_autoflush:
                        counts = await _store(session, shop_id, product, candidates, write=False)
                else:
                    async with session.begin_nested():
                        counts = await _store(session, shop_id, product, candidates, write=True)
            except _Rejected as rejected:
                report.errors.extend(rejected.errors)
                report.products_rejected += 1
            except SQLAlchemyError as exc:
                reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
                report.errors.append(RowError(product.lines[0], None, f"the product ({product.where}) could not "
                                              f"be stored: {reason}"))
                report.products_rejected += 1
            else:
                _count(report, counts)
            if not all_or_nothing and not dry_run:
                await session.commit()
        done += len(product.lines)
        if progress is not None:
            progress(done, rows)
    if dry_run or (all_or_nothing and report.errors):
        await session.rollback()
        report.stored = False
    else:
        await session.commit()
    report.errors.sort(key=lambda e: e.line)
    return report


def _count(report: ImportReport, counts: _Counts) -> None:
    if counts.created:
        report.products_created += 1
    elif counts.changed:
        report.products_updated += 1
    else:
        report.products_unchanged += 1
    report.variants_created += counts.variants_created
    report.variants_updated += counts.variants_updated
    report.variants_archived += counts.variants_archived


async def _store(session: AsyncSession, shop_id: int, rows: ProductRows, candidates: list[tuple[int, str]],
                 write: bool) -> _Counts:
    shop = await session.get(Shop, shop_id)
    live = [pid for pid, status in candidates if status != ProductStatus.archived]
    if len(live) > 1:
        raise _Rejected([RowError(rows.lines[0], "product_name", f"the shop has {len(live)} products named "
                                  f"{shown(rows.name)}; rename all but one in the app, then import again")])
    pick = live[0] if live else max((pid for pid, _ in candidates), default=None)
    product = None
    if pick is not None:
        product = (await session.scalars(select(Product).where(Product.id == pick)
                                         .execution_options(populate_existing=True))).one()
    matched = _match_variants(rows, product)
    data, errors = validate(rows, product, matched)
    if data is None:
        raise _Rejected(errors)
    counts = _Counts()
    if product is None:
        product = Product(shop_id=shop_id, **data.model_dump(exclude={"variants"}))
        product.variants = [Variant(**variant_fields(v, i)) for i, v in enumerate(data.variants)]
        index_product(product, shop)
        list_product(product)
        counts.created, counts.variants_created = True, len(data.variants)
        if write:
            session.add(product)
            await session.flush()
        return counts

    for name, value in data.model_dump(exclude={"variants"}).items():
        if getattr(product, name) != value:
            setattr(product, name, value)
            counts.changed = True
    kept: set[int] = set()
    for position, (incoming, variant) in enumerate(zip(data.variants, matched, strict=True)):
        fields = variant_fields(incoming, position)
        if variant is None:
            product.variants.append(Variant(**fields))
            counts.variants_created += 1
            continue
        kept.add(variant.id)
        changes = {k: v for k, v in fields.items() if getattr(variant, k) != v}
        if variant.archived:
            changes["archived"] = False
        for name, value in changes.items():
            setattr(variant, name, value)
        counts.variants_updated += bool(changes)
    for variant in product.variants:
        if variant.id is not None and variant.id not in kept and not variant.archived:
            variant.archived = True
            counts.variants_archived += 1
    if counts.changed or counts.variants_created or counts.variants_updated or counts.variants_archived:
        counts.changed = True
        index_product(product, shop)
        list_product(product)
        product.updated_at = utcnow()
    if write:
        await session.flush()
    else:
        session.expunge(product)  # with its variants: the changes are forgotten, never flushed
    return counts


def _match_variants(rows: ProductRows, product: Product | None) -> list[Variant | None]:
    """The stored variant for each row, by label: a live one first, else the latest archived one."""
    if product is None:
        return [None] * len(rows.variants)
    matched: list[Variant | None] = []
    errors = []
    for row in rows.variants:
        same = [v for v in product.variants if match_key(v.label) == match_key(row.label)]
        live = [v for v in same if not v.archived]
        if len(live) > 1:
            errors.append(RowError(row.line, "variant_label", f"the product has {len(live)} variants labelled "
                                   f"{shown(row.label)}; rename all but one in the app, then import again"))
        matched.append(live[0] if live else max(same, key=lambda v: v.id, default=None))
    if errors:
        raise _Rejected(errors)
    return matched


# ---- export -------------------------------------------------------------------------------------

@dataclass
class ExportResult:
    data: bytes
    products: int = 0
    rows: int = 0
    warnings: list[str] = field(default_factory=list)


async def export_products(session: AsyncSession, shop_id: int) -> ExportResult:
    """Every product of the shop, any status, with its variants that are not archived: a file that
    ``import_products`` reads back to the same products.

    An archived product whose name a product still for sale (or a later archived one) also has is
    left out, since the import matches products by name and would merge the two.
    """
    stored = (await session.scalars(select(Product).where(Product.shop_id == shop_id)
                                    .order_by(Product.id))).all()
    keys: dict[str, list[Product]] = {}
    for product in stored:
        keys.setdefault(match_key(product.name), []).append(product)
    result = ExportResult(b"")
    lines = []
    for product in stored:
        namesakes = keys[match_key(product.name)]
        live = [p for p in namesakes if p.status != ProductStatus.archived]
        if product.status == ProductStatus.archived and (live or product is not namesakes[-1]):
            result.warnings.append(f"left out archived product {product.id} {shown(product.name)}: another "
                                   "product has the same name")
            continue
        if len(live) > 1 and product is live[0]:
            result.warnings.append(f"{len(live)} products are named {shown(product.name)}; an import matches "
                                   "products by name, so rename all but one before importing this file")
        variants = [v for v in product.variants if not v.archived]
        if not variants:
            result.warnings.append(f"left out product {product.id} {shown(product.name)}: it has no variants")
            continue
        result.products += 1
        for v in variants:
            lines.append([product.name, product.description, product.category, product.status, v.label,
                          v.retail_price, format_tiers(v.wholesale_tiers), v.min_order_quantity, v.stock,
                          v.low_stock_threshold, v.weight_grams])
    result.rows = len(lines)
    result.data = write_rows(lines)
    return result

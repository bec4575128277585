"""search: folded name, listing price and stock on products; FTS5 (SQLite) or pg_trgm (PostgreSQL)

Revision ID: f266a7932e3e
Revises: 5422e2d64455
Create Date: 2026-11-27 02:24:03.525339

See docs/decisions/0004-search.md. SQLite: external-content FTS5 tables over the folded columns, kept
in step by triggers. PostgreSQL: pg_trgm GIN indexes over the folded text. Existing rows are
re-indexed here with the same folding the app uses.

Caution for later SQLite migrations: a batch_alter_table that has to copy ``products`` or ``shops``
(drop or alter a column, change a constraint) drops these triggers with the old table; such a
migration must create them again (``create_fts_triggers`` below). tests/catalog/test_search.py
checks that they exist at head.
"""
import re
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op
from common.vietnam import province_name

revision: str = 'f266a7932e3e'
down_revision: str | None = '5422e2d64455'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The folding and documents of services/catalog/search.py as of this revision (kept here so that
# this migration means the same thing whatever the app's code becomes later).
_WORD = re.compile(r"[^\W_]+")
_SPACES = re.compile(r"\s+")


def _fold(value: str) -> str:
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _SPACES.sub(" ", stripped.lower()).strip()


def _document(*parts: str | None) -> str:
    found = [w for part in parts if part for w in _WORD.findall(_fold(part))]
    return f" {' '.join(found)} " if found else ""


FTS_TABLES = {
    # table: (FTS5 table, indexed columns)
    "products": ("products_fts", ("search_name", "search_text")),
    "shops": ("shops_fts", ("search_text",)),
}


def create_fts_triggers(table: str) -> None:
    fts, cols = FTS_TABLES[table]
    names = ", ".join(cols)
    new = ", ".join(f"new.{c}" for c in cols)
    old = ", ".join(f"old.{c}" for c in cols)
    op.execute(f"""CREATE TRIGGER IF NOT EXISTS {fts}_ai AFTER INSERT ON {table} BEGIN
        INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new});
    END""")
    op.execute(f"""CREATE TRIGGER IF NOT EXISTS {fts}_ad AFTER DELETE ON {table} BEGIN
        INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old});
    END""")
    op.execute(f"""CREATE TRIGGER IF NOT EXISTS {fts}_au AFTER UPDATE OF {names} ON {table} BEGIN
        INSERT INTO {fts}({fts}, rowid, {names}) VALUES ('delete', old.id, {old});
        INSERT INTO {fts}(rowid, {names}) VALUES (new.id, {new});
    END""")


def _reindex_rows() -> None:
    bind = op.get_bind()
    shops = {row.id: row for row in bind.execute(sa.text(
        "SELECT id, name, description, province_code FROM shops"))}
    for shop in shops.values():
        bind.execute(sa.text("UPDATE shops SET search_text = :t WHERE id = :id"),
                     {"t": _document(shop.name, shop.description, province_name(shop.province_code)),
                      "id": shop.id})
    updates = []
    for row in bind.execute(sa.text("SELECT id, shop_id, name, description FROM products")):
        shop = shops[row.shop_id]
        updates.append({"id": row.id, "n": _document(row.name),
                        "t": _document(row.name, row.description, shop.name, province_name(shop.province_code))})
    if updates:
        bind.execute(sa.text("UPDATE products SET search_name = :n, search_text = :t WHERE id = :id"), updates)
    live = "v.product_id = products.id AND v.archived = :no"
    bind.execute(sa.text(f"""UPDATE products SET
        min_price = COALESCE((SELECT MIN(v.retail_price) FROM variants v WHERE {live}), 0),
        in_stock = EXISTS (SELECT 1 FROM variants v WHERE {live} AND v.stock > 0)"""), {"no": False})


def upgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.add_column(sa.Column('search_name', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      server_default='', nullable=False))
        batch_op.add_column(sa.Column('min_price', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('in_stock', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index('ix_products_status_min_price', ['status', 'min_price', 'id'], unique=False)

    _reindex_rows()

    if op.get_bind().dialect.name == "sqlite":
        for table, (fts, cols) in FTS_TABLES.items():
            # External content: the folded text lives once, in the table; FTS5 keeps only the index.
            # prefix='1 2 3 4 5 6': the last word of a query is a prefix ("hoa su" → "su"*); a prefix
            # index streams its matches in rowid order, as a whole word does, where a prefix without
            # one is merged from every word it begins, all of them, before the first row comes out.
            # Vietnamese syllables are short: six letters cover nearly all of them.
            op.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({', '.join(cols)}, content='{table}', "
                       "content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='1 2 3 4 5 6')")
            create_fts_triggers(table)
            op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    else:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute("CREATE INDEX ix_products_search_text_trgm ON products USING gin (search_text gin_trgm_ops)")
        # Relevance reads "all the words in the name" first: the names' own index is far smaller.
        op.execute("CREATE INDEX ix_products_search_name_trgm ON products USING gin (search_name gin_trgm_ops)")
        op.execute("CREATE INDEX ix_shops_search_text_trgm ON shops USING gin (search_text gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, (fts, _) in FTS_TABLES.items():
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
    else:
        op.execute("DROP INDEX IF EXISTS ix_shops_search_text_trgm")
        op.execute("DROP INDEX IF EXISTS ix_products_search_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_products_search_text_trgm")
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index('ix_products_status_min_price')
        batch_op.drop_column('in_stock')
        batch_op.drop_column('min_price')
        batch_op.drop_column('search_name')

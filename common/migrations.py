"""The body of every app's alembic ``env.py``: run against the connection the app hands over."""

from __future__ import annotations

import re

from alembic import context
from sqlalchemy import MetaData

# Made by hand in migrations, unknown to the models: SQLite FTS5 tables with their shadow tables, and
# PostgreSQL trigram indexes. Autogenerate must neither drop them nor copy them into a new migration.
_HAND_MADE_TABLE = re.compile(r"_fts(_data|_idx|_docsize|_config|_content)?$")
_HAND_MADE_INDEX = re.compile(r"_trgm$")


def include_name(name: str | None, type_: str, _parents: dict) -> bool:
    if name and type_ == "table":
        return not _HAND_MADE_TABLE.search(name)
    if name and type_ == "index":
        return not _HAND_MADE_INDEX.search(name)
    return True


def run_migrations(target_metadata: MetaData) -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "Migrations run through the app: `python -m services.<name> migrate` "
            "(or `makemigration`), which hands alembic a connection."
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copy
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()

from sqlmodel import SQLModel

import services.catalog.products.models  # noqa: F401  (registers the tables)
import services.catalog.shops.models  # noqa: F401
from common.migrations import run_migrations

run_migrations(SQLModel.metadata)

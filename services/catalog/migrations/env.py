from sqlmodel import SQLModel

import services.catalog.outbox  # noqa: F401  (registers the tables)
import services.catalog.products.models  # noqa: F401
import services.catalog.reservations.models  # noqa: F401
import services.catalog.shops.models  # noqa: F401
from common.migrations import run_migrations

run_migrations(SQLModel.metadata)

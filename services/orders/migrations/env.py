from sqlmodel import SQLModel

import services.orders.outbox  # noqa: F401  (registers the tables)
from common.migrations import run_migrations

run_migrations(SQLModel.metadata)

from sqlmodel import SQLModel

import gateway.identity.models  # noqa: F401  (registers the tables)
from common.migrations import run_migrations

run_migrations(SQLModel.metadata)

from sqlmodel import SQLModel

import services.notify.inbox  # noqa: F401  (registers the tables)
from common.migrations import run_migrations

run_migrations(SQLModel.metadata)

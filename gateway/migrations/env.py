from sqlmodel import SQLModel

from common.migrations import run_migrations

run_migrations(SQLModel.metadata)

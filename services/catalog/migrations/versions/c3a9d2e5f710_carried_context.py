"""carried context: the request id and trace context kept with each row of queued work

Revision ID: c3a9d2e5f710
Revises: 9d54cd5ba5c0
Create Date: 2026-12-03 11:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op


revision: str = 'c3a9d2e5f710'
down_revision: str | None = '9d54cd5ba5c0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_events') as batch:
        batch.add_column(sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch.add_column(sa.Column('trace_context', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_events') as batch:
        batch.drop_column('trace_context')
        batch.drop_column('request_id')

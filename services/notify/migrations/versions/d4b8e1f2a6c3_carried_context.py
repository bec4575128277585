"""carried context: the request id and trace context kept with each row of queued work

Revision ID: d4b8e1f2a6c3
Revises: 5e4652323c70
Create Date: 2026-12-03 11:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op


revision: str = 'd4b8e1f2a6c3'
down_revision: str | None = '5e4652323c70'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('mail_jobs') as batch:
        batch.add_column(sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch.add_column(sa.Column('trace_context', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.add_column(sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch.add_column(sa.Column('trace_context', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
    with op.batch_alter_table('push_deliveries') as batch:
        batch.add_column(sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        batch.add_column(sa.Column('trace_context', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('mail_jobs') as batch:
        batch.drop_column('trace_context')
        batch.drop_column('request_id')
    with op.batch_alter_table('webhook_deliveries') as batch:
        batch.drop_column('trace_context')
        batch.drop_column('request_id')
    with op.batch_alter_table('push_deliveries') as batch:
        batch.drop_column('trace_context')
        batch.drop_column('request_id')

"""order shipment: carrier and tracking code

Revision ID: 3f6c1a2b9d40
Revises: d9928cae419a
Create Date: 2026-12-03 08:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op


revision: str = '3f6c1a2b9d40'
down_revision: str | None = 'd9928cae419a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('carrier', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch.add_column(sa.Column('tracking_code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('tracking_code')
        batch.drop_column('carrier')

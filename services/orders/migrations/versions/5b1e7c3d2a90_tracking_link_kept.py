"""the tracking link kept: its token encrypted, and the buyer's mail with it

Revision ID: 5b1e7c3d2a90
Revises: 3f6c1a2b9d40
Create Date: 2026-12-03 11:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op


revision: str = '5b1e7c3d2a90'
down_revision: str | None = '3f6c1a2b9d40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Orders placed before have neither: no token to show (their slip says so), no mail to send.
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('tracking_token_encrypted', sa.Text(), nullable=True))
        batch.add_column(sa.Column('buyer_mail', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    op.create_index('ix_orders_buyer_mail', 'orders', ['buyer_mail'])


def downgrade() -> None:
    op.drop_index('ix_orders_buyer_mail', table_name='orders')
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('buyer_mail')
        batch.drop_column('tracking_token_encrypted')

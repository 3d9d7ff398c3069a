"""sign_in_destinations: where a state minted by /login leads, so that the state
(at most 128 letters and digits) need not carry a whole URL.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_in_destinations",
        sa.Column("state", sa.String(128), primary_key=True),
        sa.Column("destination", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Integer, nullable=False),
    )
    op.create_index("ix_sign_in_destinations_expires_at", "sign_in_destinations", ["expires_at"])

"""followers.refreshing_until: while it is in the future, one instance is asking
WeChat for the follower's new tokens and the others wait for them.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("followers", sa.Column("refreshing_until", sa.Integer))

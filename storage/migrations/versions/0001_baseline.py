"""Baseline: the schema as the bot created it before it had migrations.

A database made by that code (metadata.create_all, no version table) already has
these tables: they are kept as they are, rows and all, and only the version is
recorded. The tables are written out here, not imported from storage/schema.py,
so that this step stays what it was when schema.py changes.

The delivery ledger's table belongs here only on PostgreSQL, where it shares the
store's database; SQLite keeps it in a throwaway file of its own
(storage/deliveries.py).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    tables = {"followers": _followers, "oauth_states": _oauth_states, "sessions": _sessions}
    if bind.dialect.name == "postgresql":
        tables["deliveries"] = _deliveries
    existing = set(sa.inspect(bind).get_table_names())
    for name, create in tables.items():
        if name not in existing:
            create()


def _followers() -> None:
    op.create_table(
        "followers",
        sa.Column("openid", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("access_token", sa.Text, nullable=False),
        sa.Column("access_expires_at", sa.Integer, nullable=False),
        sa.Column("refresh_token", sa.Text, nullable=False),
        sa.Column("refresh_expires_at", sa.Integer, nullable=False),
        sa.Column("unionid", sa.String(64)),
        sa.Column("nickname", sa.Text),
        sa.Column("headimgurl", sa.Text),
        sa.Column("profile", sa.Text),
        sa.Column("needs_reauth", sa.Boolean, nullable=False),
        sa.Column("authorized_at", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Integer, nullable=False),
    )


def _oauth_states() -> None:
    op.create_table(
        "oauth_states",
        sa.Column("state", sa.String(128), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("claimed_at", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.Integer, nullable=False),
        sa.Column("openid", sa.String(64)),
        sa.Column("completed_at", sa.Integer),
    )
    op.create_index("ix_oauth_states_expires_at", "oauth_states", ["expires_at"])


def _sessions() -> None:
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Integer, nullable=False),
    )


def _deliveries() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=False),
        sa.Column("wanted", sa.Boolean, nullable=False),
        sa.Column("answer", sa.LargeBinary),
    )
    op.create_index(
        "deliveries_wanted", "deliveries", ["claimed_at"], postgresql_where=sa.text("wanted")
    )

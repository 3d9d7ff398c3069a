"""Tables. Times are integer Unix seconds, so every dialect compares them alike."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

followers = Table(
    "followers",
    metadata,
    Column("openid", String(64), primary_key=True),
    Column("scope", String(32), nullable=False),
    Column("access_token", Text, nullable=False),
    Column("access_expires_at", Integer, nullable=False),
    Column("refresh_token", Text, nullable=False),
    Column("refresh_expires_at", Integer, nullable=False),
    Column("unionid", String(64)),
    Column("nickname", Text),
    Column("headimgurl", Text),
    Column("profile", Text),  # the last userinfo answer, JSON
    Column("needs_reauth", Boolean, nullable=False, default=False),
    Column("authorized_at", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
    # Set while one instance refreshes the tokens: the others wait for its result.
    Column("refreshing_until", Integer),
)

# A row per state that reached the callback: it makes a state single-use and
# remembers the outcome so WeChat's double redirect lands on /me.
oauth_states = Table(
    "oauth_states",
    metadata,
    Column("state", String(128), primary_key=True),
    Column("code_hash", String(64), nullable=False),
    Column("claimed_at", Integer, nullable=False),
    Column("expires_at", Integer, nullable=False, index=True),
    Column("openid", String(64)),
    Column("completed_at", Integer),
)

# Tokens of the account as a whole, shared by every instance: a row per kind (the basic
# access_token from cgi-bin/stable_token). The row is locked while one instance renews it.
account_tokens = Table(
    "account_tokens",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("value", Text, nullable=False),
    Column("expires_at", Integer, nullable=False),
    Column("updated_at", Integer, nullable=False),
)

# Where a /login state leads: a row per state minted for a destination other than
# /me (the state's HMAC covers the destination), swept once past `expires_at`.
sign_in_destinations = Table(
    "sign_in_destinations",
    metadata,
    Column("state", String(128), primary_key=True),
    Column("destination", Text, nullable=False),
    Column("expires_at", Integer, nullable=False, index=True),
)

# The delivery ledger's table lives apart (storage/deliveries.py): with SQLite, in
# a file of its own, written without fsync; with PostgreSQL, in the same database.
ledger_metadata = MetaData()

# A row per delivery WeChat pushed: whoever inserts it
# runs the handlers; a later copy sets `wanted`, and the answer is then saved for
# it. Clustered on `id` (no rowid) and with no index on time, so a claim writes
# one page; old rows are swept slice by slice.
deliveries = Table(
    "deliveries",
    ledger_metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # hash of the delivery key
    Column("claimed_at", BigInteger, nullable=False),
    Column("wanted", Boolean, nullable=False, default=False),
    Column("answer", LargeBinary),
    sqlite_with_rowid=False,
)
# Only the rare rows a copy waits on: the flusher's one read per flush.
deliveries_wanted = Index(
    "deliveries_wanted", deliveries.c.claimed_at, sqlite_where=deliveries.c.wanted
)


def declare_postgresql() -> None:
    """The PostgreSQL side of the declarations (its migrations make the same), added
    once a PostgreSQL engine exists: naming it at import would load SQLAlchemy's
    PostgreSQL dialect (about 2 MiB) into every process that only uses SQLite."""
    deliveries_wanted.dialect_options["postgresql"]["where"] = deliveries.c.wanted


sessions = Table(
    "sessions",
    metadata,
    Column("id", String(160), primary_key=True),
    Column("data", Text, nullable=False),
    Column("updated_at", Integer, nullable=False),
)

"""A throwaway PostgreSQL database for one test session, a fresh schema per test.

The server is the machine's own (`BOT_TEST_POSTGRES_URL`, by default the local
cluster's `postgres` user over TCP, as .ci/run starts it). The session creates
`bot_test_<random>` and drops it at the end; each test gets a schema of its own in
it, named in the URL's search_path, so tests start from an empty database without
paying for CREATE DATABASE each time.
"""

from __future__ import annotations

import itertools
import os
import secrets

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

SERVER_URL = os.environ.get(
    "BOT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _conninfo(url: URL) -> str:
    """psycopg's connection string for a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class Unreachable(Exception):
    """No PostgreSQL server answered at SERVER_URL."""


class ThrowawayDatabase:
    """`bot_test_<random>` on the server: `schema_url()` hands out empty schemas."""

    def __init__(self, server_url: str = SERVER_URL) -> None:
        self._server = make_url(server_url)
        self.name = f"bot_test_{secrets.token_hex(4)}"
        self.url = self._server.set(database=self.name)
        self._schemas = itertools.count(1)
        try:
            with self._admin() as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg.OperationalError as exc:
            raise Unreachable(f"{self._server.host}:{self._server.port}: {exc}") from None

    def _admin(self, url: URL | None = None) -> psycopg.Connection:
        return psycopg.connect(_conninfo(url or self._server), autocommit=True, connect_timeout=5)

    def schema_url(self) -> str:
        """The URL of a new, empty schema of the test database."""
        schema = f"t{next(self._schemas)}"
        with self._admin(self.url) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    def drop(self) -> None:
        with self._admin() as conn:
            statement = sql.SQL("DROP DATABASE {} WITH (FORCE)")
            conn.execute(statement.format(sql.Identifier(self.name)))

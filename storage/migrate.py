"""The schema's versions: Alembic migrations (storage/migrations/versions), applied
whenever the store opens and by `bot.py migrate`.

All pending steps run in one transaction that first takes a lock, so instances
starting together upgrade once: the others wait, then find nothing left to do.
On PostgreSQL the lock is an advisory lock held until that transaction ends; on
SQLite it is the write lock the store's writes take (BEGIN IMMEDIATE). Both
databases roll DDL back with the transaction, so a step that fails leaves the
schema as it was. Migrations only go forward: to go back, restore a backup.

Alembic itself (with Mako and Pygments, about 10 MiB per process) is imported
only when a step is pending: the version files name their revisions, so seeing
that the database is at the latest one takes one query and no import.

No alembic.ini is read at run time; storage/migrations/alembic.ini is there for
writing a new step (`alembic -c storage/migrations/alembic.ini revision -m ...`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType

from sqlalchemy import Connection, inspect, text

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock's key for schema upgrades: any constant the database's
# other users leave alone (the first 8 bytes of sha1("wechat-oauth-bot schema")).
ADVISORY_LOCK = 0x3E_51_7D_2B_0C_96_4A_11
VERSION_TABLE = "alembic_version"
# A version file's own lines: `revision = "0004"`, `down_revision = "0003"` (or None).
_REVISION_LINE = re.compile(r"""^(down_)?revision\s*=\s*(?:"([^"]*)"|'([^']*)'|None)""", re.M)


class UnknownRevision(Exception):
    """The database is at a version this code does not have (newer code upgraded it)."""


@dataclass(frozen=True)
class Upgrade:
    """What bringing a database up to date did: from `before` (None: no version
    yet) to `after`, through the `applied` steps, oldest first."""

    before: str | None
    after: str
    applied: tuple[str, ...]


def load_if_pending(conn: Connection) -> None:
    """Import Alembic now if a step looks pending, before `upgrade` takes the lock:
    imported under it (with Mako and Pygments, seconds on a busy host) it kept the
    other instances starting together waiting past SQLite's busy timeout."""
    if _current(conn) != latest():
        _alembic()


def upgrade(conn: Connection) -> Upgrade:
    """Apply the pending migrations on `conn`, inside its open write transaction."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
    before = _current(conn)
    if before is not None and before == latest():
        return Upgrade(before, before, ())
    return _alembic_upgrade(conn, before)


@cache
def latest() -> str | None:
    """The revision no other step builds on, as the version files say; None when
    they do not name exactly one (Alembic then decides)."""
    revisions, bases = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for down, double, single in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            name = double or single
            (bases if down else revisions).add(name)
    heads = revisions - bases
    return heads.pop() if len(heads) == 1 else None


def _alembic() -> tuple[ModuleType, type, type]:
    """Alembic's command module, Config and ScriptDirectory, imported only when a
    step is pending: see the module's docstring."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    return command, Config, ScriptDirectory


def _alembic_upgrade(conn: Connection, before: str | None) -> Upgrade:
    command, Config, ScriptDirectory = _alembic()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    script = ScriptDirectory.from_config(config)
    if before is not None and before not in {s.revision for s in script.walk_revisions()}:
        raise UnknownRevision(
            f"the database schema is at version {before}, which this version of the bot "
            f"does not know (its latest is {script.get_current_head()}): run the newer "
            "version that upgraded it"
        )
    command.upgrade(config, "head")
    after = _current(conn)
    steps = script.iterate_revisions(after, before or "base")
    done = Upgrade(before, after, tuple(reversed([step.revision for step in steps])))
    if done.applied:
        log.info("database schema upgraded from %s to %s", before or "none", after)
    return done


def _current(conn: Connection) -> str | None:
    """The database's version as Alembic stamped it, None before the first step."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()  # noqa: S608

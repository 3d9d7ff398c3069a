"""The versioned schema on both databases: `bot.py migrate` run as operators run it,
a database made before migrations upgraded with its rows, instances starting at once."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, func, inspect, select, text

from storage import Store
from storage.migrate import MIGRATIONS, latest
from storage.schema import ledger_metadata, metadata
from storage.store import create_store_engine
from tests import legacy_schema as legacy
from tests import processes
from tests.conftest import ROOT, write_config
from tests.test_cli import run

pytestmark = pytest.mark.backends("sqlite", "postgresql")
STEPS = ("0001", "0002", "0003", "0004")  # every migration, oldest first
HEAD = STEPS[-1]
UPGRADED = f"database schema upgraded from none to {HEAD} ({', '.join(STEPS)})"


def _migrate(tmp_path, db_url: str) -> str:
    config = write_config(tmp_path / "config.toml", 8888, "http://127.0.0.1:9", storage_url=db_url)
    done = run("--config", str(config), "migrate")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _declared(engine: Engine) -> list[MetaData]:
    """What the code declares for this database: the ledger shares it on PostgreSQL."""
    return [metadata, ledger_metadata] if engine.dialect.name == "postgresql" else [metadata]


def _rows(engine: Engine, tables: list[MetaData]) -> dict[str, list[dict]]:
    with engine.connect() as conn:
        return {
            table.name: [row._asdict() for row in conn.execute(select(table).order_by(*table.c))]
            for schema in tables
            for table in schema.sorted_tables
        }


def _catalog(engine: Engine) -> dict:
    """Tables, columns, indexes and the recorded version, as the database reports them."""
    engine.dispose()  # a fresh connection: PostgreSQL caches nothing stale
    found = inspect(engine)
    tables = sorted(found.get_table_names())
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return {
        "version": version,
        **{
            name: (
                [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(name)],
                sorted(index["name"] for index in found.get_indexes(name)),
            )
            for name in tables
        },
    }


def _fill_legacy(engine: Engine) -> list[MetaData]:
    """A database as the code before migrations left it: its tables and some rows."""
    tables = [legacy.metadata]
    if engine.dialect.name == "postgresql":
        tables.append(legacy.ledger_metadata)
    now = int(time.time())
    with engine.begin() as conn:
        for schema in tables:
            schema.create_all(conn)
        for openid in ("o6_first", "o6_second"):
            conn.execute(
                legacy.followers.insert().values(
                    openid=openid, scope="snsapi_userinfo", access_token=f"AT-{openid}",
                    access_expires_at=now + 7200, refresh_token=f"RT-{openid}",
                    refresh_expires_at=now + 30 * 86400, unionid=None, nickname="小明😀",
                    headimgurl="https://example.com/0", profile='{"nickname": "小明😀"}',
                    needs_reauth=openid == "o6_second", authorized_at=now, updated_at=now,
                )
            )  # fmt: skip
        conn.execute(
            legacy.oauth_states.insert().values(
                state="s" * 64, code_hash="h" * 64, claimed_at=now, expires_at=now + 600,
                openid="o6_first", completed_at=now,
            )
        )  # fmt: skip
        conn.execute(legacy.sessions.insert().values(id="o6_first", data="{}", updated_at=now))
        if engine.dialect.name == "postgresql":
            conn.execute(legacy.deliveries.insert().values(id=7, claimed_at=now, wanted=True))
    return tables


def test_a_database_made_before_migrations_keeps_every_row(tmp_path, db_url):
    engine = create_store_engine(db_url)
    tables = _fill_legacy(engine)
    before = _rows(engine, tables)
    assert _migrate(tmp_path, db_url) == UPGRADED
    assert _rows(engine, tables) == before
    with engine.connect() as conn:  # and the tables are now exactly what the code declares
        assert compare_metadata(MigrationContext.configure(conn), _declared(engine)) == []
    store = Store.from_url(db_url)
    assert store.migrated.applied == ()
    assert store.get_follower("o6_first").access_token == "AT-o6_first"
    assert store.get_follower("o6_second").needs_reauth


def test_a_second_migrate_changes_nothing(tmp_path, db_url):
    engine = create_store_engine(db_url)
    assert _migrate(tmp_path, db_url) == UPGRADED
    catalog = _catalog(engine)
    assert catalog["version"] == [HEAD]
    assert _migrate(tmp_path, db_url) == f"database schema up to date (version {HEAD})"
    assert _catalog(engine) == catalog


def test_the_migrations_make_the_schema_the_code_declares(db_url):
    engine = Store.from_url(db_url).engine
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), _declared(engine)) == []


def test_opening_an_up_to_date_database_leaves_alembic_unimported(tmp_path, db_url):
    """Alembic costs every process about 10 MiB: only a pending step loads it."""
    assert latest() == ScriptDirectory(str(MIGRATIONS)).get_current_head() == HEAD
    probe = (
        "import sys; from storage import Store; store = Store.from_url(sys.argv[1]); "
        "print(store.migrated.applied, 'alembic' in sys.modules)"
    )
    opened = [
        subprocess.run(  # a process of its own each: a fresh sys.modules
            [sys.executable, "-c", probe, db_url], cwd=ROOT, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [done.stdout.strip() for done in opened] == [f"{STEPS} True", "() False"], opened


def test_a_database_newer_than_the_code_is_refused_in_one_line(tmp_path, db_url):
    engine = Store.from_url(db_url).engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    config = write_config(tmp_path / "config.toml", 8888, "http://127.0.0.1:9", storage_url=db_url)
    done = run("--config", str(config), "migrate")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "storage error (storage.url): the database schema is at version 9999, which this "
        f"version of the bot does not know (its latest is {HEAD}): run the newer version "
        "that upgraded it"
    ]


def test_instances_starting_together_upgrade_once(db_url):
    context = processes.context()
    barrier, results = context.Barrier(4), context.Queue()
    starts = [
        context.Process(target=processes.open_store, args=(db_url, barrier, results))
        for _ in range(4)
    ]
    for start in starts:
        start.start()
    outcomes = sorted((results.get(timeout=60) for _ in starts), key=len)
    for start in starts:
        start.join(timeout=10)
    assert outcomes == [(), (), (), STEPS]
    engine = create_store_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(text("alembic_version"))).scalar() == 1

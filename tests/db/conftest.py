"""Fixtures for the database tests: every test runs on a temporary SQLite file and on a fresh
PostgreSQL database (a missing server fails the run: CI has one), both brought up with db.migrate.upgrade.

PostgreSQL: one database per test session (`smsops_test_<hex>`, dropped at the end) and every table
emptied before each test, so parallel runs never share data and a test never sees another's.
Set SMSOPS_TEST_PG to use another server.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from bot.domain.clock import FrozenClock
from db.engine import make_engine, normalise_url
from db.ledger import Ledger
from db.migrate import upgrade
from tests.support import pg


def pg_admin_url() -> str:
    return pg.admin_url().replace("postgresql://", "postgresql+psycopg://", 1)

TABLES = ("held_approvals", "held_sends", "approvals", "tracked_sends", "intents", "reminder_claims", "seen_requests",
          "ledger_entries")
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _admin_engine() -> Engine:
    return create_engine(normalise_url(pg_admin_url()), isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def pg_available() -> bool:
    if pg.configured_admin_url().lower() == "none":
        return False
    try:
        engine = _admin_engine()
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


class PgDatabases:
    """Creates throwaway databases on the test server and drops them again.

    Names carry the creating process's id, so a run that was killed (and never dropped its
    databases) is cleaned up by the next run on the same machine, without touching the databases
    of a run still going on in parallel."""

    PREFIX = "smsops_test_"

    def __init__(self) -> None:
        os.environ["SMSOPS_TEST_PG_USED"] = "1"
        self.admin = _admin_engine()
        self.names: list[str] = []

    def url(self, name: str) -> str:
        return make_url(normalise_url(pg_admin_url())).set(database=name).render_as_string(hide_password=False)

    def create(self) -> str:
        name = f"{self.PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}" {pg.create_options()}'))
        self.names.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = make_url(url).database or ""
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.names:
            self.names.remove(name)

    def drop_all(self) -> None:
        for name in list(self.names):
            self.drop(self.url(name))
        self.admin.dispose()

    def drop_orphans(self) -> None:
        """Databases left by test runs on this machine whose process is gone."""
        if make_url(normalise_url(pg_admin_url())).host not in ("127.0.0.1", "localhost", "::1", None):
            return
        with self.admin.connect() as conn:
            names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'smsops\\_test\\_%'"))
            for (name,) in list(names):
                pid = name[len(self.PREFIX):].split("_")[0]
                if pid.isdigit() and int(pid) < 2**22 and not _alive(int(pid)):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    if not pg_available():
        pytest.fail(f"no PostgreSQL answers at {pg_admin_url()}: start one, or point SMSOPS_TEST_PG at one")
    databases = PgDatabases()
    databases.drop_orphans()
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture
def fresh_pg_url(pg_databases: PgDatabases) -> Iterator[str]:
    """An empty PostgreSQL database of its own, dropped after the test."""
    url = pg_databases.create()
    try:
        yield url
    finally:
        pg_databases.drop(url)


@pytest.fixture(scope="session")
def _pg_session_url(pg_databases: PgDatabases) -> str:
    url = pg_databases.create()
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once; each test gets a copy (quicker than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "smsops.db"
    upgrade(f"sqlite:///{path}")  # its engine is disposed: the WAL is checkpointed into the file
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        path = tmp_path / "smsops.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    pg_url: str = request.getfixturevalue("_pg_session_url")
    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)}"))
    admin.dispose()
    return pg_url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def ledger(engine: Engine, clock: FrozenClock) -> Ledger:
    return Ledger(engine, clock)

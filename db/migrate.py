"""Bring a database's schema up to date with the Alembic migrations shipped next to this file.

Works from an installed package and from any working directory: the Alembic configuration is built
in code, not read from an ini file. Several replicas may start at once: on PostgreSQL the upgrade
runs under a transaction-scoped advisory lock (and PostgreSQL's DDL is transactional, so a replica
either sees no schema or all of it); on SQLite the upgrade's transaction begins IMMEDIATE, which
takes the database's write lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Alembic announces every plugin it loads at INFO, on import: not news to anyone running the bot.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import db.models  # noqa: F401, E402  (registers every table on SQLModel.metadata)
from db.engine import DatabaseSettingError, describe, make_engine, normalise_url  # noqa: E402

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_KEY = 0x5E50_0A1E  # pg_advisory_xact_lock key for "schema migrations"

# Tables that share the database but are not ours to migrate (APScheduler's job store makes its own).
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic hook: leave foreign tables, and their indexes and constraints, out of comparisons."""
    if type_ == "table":
        return name not in FOREIGN_TABLES
    table = getattr(obj, "table", None)
    return getattr(table, "name", None) not in FOREIGN_TABLES


def alembic_config(database_url: str) -> Config:
    """An Alembic Config for this package's migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return cfg


def _engine(database_url: str) -> Engine:
    # A short-lived engine: one connection, disposed of when done.
    return make_engine(normalise_url(database_url))


@contextmanager
def _alembic_logs(quiet: bool) -> Iterator[None]:
    """Alembic's INFO lines ("setup plugin …", "Context impl …") are noise for the bot's users;
    `quiet` hides even "Running upgrade …" (for the CLI commands that migrate on the side)."""
    names = ("alembic",) if quiet else ()
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def upgrade(database_url: str, revision: str = "head", *, quiet: bool = False) -> None:
    """Apply every migration not yet applied (idempotent; safe to run from several processes)."""
    cfg = alembic_config(database_url)
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            # SQLite: this first statement opens the transaction with BEGIN IMMEDIATE (db.engine),
            # so a concurrent upgrade waits here. PostgreSQL: wait for the migration lock.
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            else:
                conn.execute(text("SELECT 1"))
            cfg.attributes["connection"] = conn
            with _alembic_logs(quiet):
                command.upgrade(cfg, revision)
            conn.commit()
    finally:
        engine.dispose()


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_diff(database_url: str) -> list[Any]:
    """What `alembic check` would complain about: differences between the models and the database
    (an empty list when they agree)."""
    engine = _engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_object}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest revision shipped with this code."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def require_current_schema(engine: Engine, database_url: str) -> None:
    """For the read-only commands, which must not migrate: the database has this code's schema, or
    DatabaseSettingError says what it has instead and what to run."""
    with engine.connect() as conn, _alembic_logs(quiet=True):
        current = MigrationContext.configure(conn).get_current_revision()
    head = head_revision()
    if current is None:
        raise DatabaseSettingError(
            f"no ledger in {describe(database_url)}: the database has no smsops tables."
            " Check DATABASE_URL; `smsops migrate` creates them for a new bot."
        )
    if current != head:
        raise DatabaseSettingError(
            f"the ledger in {describe(database_url)} has schema revision {current}, this smsops expects {head}:"
            " run `smsops migrate` first (or use the smsops version the bot runs)."
        )

"""One engine per process, tuned for the database it talks to."""

from __future__ import annotations

import collections
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

# Execution option marking an engine (or connection) whose transactions only read. On SQLite such a
# transaction begins DEFERRED: in WAL mode a reader never waits for the write lock, so a lookup does
# not queue behind the writers. Everything else begins IMMEDIATE (see `_sqlite_engine`).
READ_ONLY_OPTION = "smsops_read_only"


def normalise_url(url: str) -> str:
    """Accept the URLs people paste (`postgres://`, `postgresql://`) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return make_url(normalise_url(url)).get_backend_name() == "sqlite"


SUPPORTED_BACKENDS = ("sqlite", "postgresql")
SUPPORTED_DRIVERS = ("pysqlite", "psycopg")  # the ones installed with smsops
_URL_ADVICE = "use sqlite:///./smsops.db (one replica) or postgresql://user@host/dbname (several)"
PG_CONNECT_TIMEOUT = 10  # seconds: an unreachable host is reported instead of waiting for TCP's own timeout


class DatabaseSettingError(Exception):
    """DATABASE_URL names no database smsops can use, or one it cannot reach or find: one line, in the
    operator's terms (which setting, what to do), for the command line."""


def _parsed(url: str) -> URL:
    try:
        return make_url(normalise_url(url))
    except ArgumentError:
        # Not echoed: a mistyped URL may still carry a password.
        raise DatabaseSettingError(f"DATABASE_URL is not a database URL: {_URL_ADVICE}") from None


def check_url(url: str) -> None:
    """Refuse, before anything connects, a URL for a database smsops does not support (`mysql://`)."""
    parsed = _parsed(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise DatabaseSettingError(f"DATABASE_URL uses {backend}://, which smsops does not support: {_URL_ADVICE}")
    driver = parsed.get_driver_name()
    if driver not in SUPPORTED_DRIVERS:
        raise DatabaseSettingError(
            f"DATABASE_URL asks for the {driver} driver, which smsops does not ship: {_URL_ADVICE}")


def describe(url: str) -> str:
    """Where a URL points, for messages: a SQLite file's absolute path, else the URL without its password."""
    parsed = _parsed(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return "an in-memory SQLite database"
        return str(Path(parsed.database).resolve())
    return parsed.render_as_string(hide_password=True)


def _first_line(error: BaseException) -> str:
    return (str(getattr(error, "orig", None) or error).strip().splitlines() or [type(error).__name__])[0]


def unreachable(url: str, error: BaseException) -> DatabaseSettingError:
    """The message for a database that did not answer (server down, wrong host, no such directory)."""
    advice = ("its directory must exist and be writable" if is_sqlite(url)
              else "check the host, port, database name and credentials, and that the server is running")
    return DatabaseSettingError(
        f"cannot open the database in DATABASE_URL ({describe(url)}): {_first_line(error)}."
        f" Check DATABASE_URL: {advice}."
    )


def probe(url: str) -> None:
    """Check DATABASE_URL before the bot starts on it: supported, and answering a query."""
    check_url(url)
    if is_sqlite(url):
        engine = make_engine(url)
    else:
        engine = create_engine(normalise_url(url), poolclass=NullPool,
                               connect_args={"connect_timeout": PG_CONNECT_TIMEOUT})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        raise unreachable(url, error) from None
    finally:
        engine.dispose()


def open_read_only(url: str) -> Engine:
    """An engine that cannot write, for the commands that only read (audit, verify-ledger): they must
    never create a database where there was none, nor change one. SQLite: the file must exist and is
    opened `mode=ro`; PostgreSQL: every transaction is read-only (`default_transaction_read_only`).
    Raises DatabaseSettingError naming the place it looked."""
    check_url(url)
    if is_sqlite(url):
        where = describe(url)
        if where == "an in-memory SQLite database":
            raise DatabaseSettingError("DATABASE_URL is an in-memory SQLite database: it holds no ledger to read")
        path = Path(where)
        if not path.is_file():
            raise DatabaseSettingError(
                f"no ledger at {path}: the file does not exist. Run this where the bot keeps its database,"
                " or set DATABASE_URL to it (e.g. DATABASE_URL=sqlite:////data/smsops.db)."
            )
        uri = f"file:{quote(str(path))}?mode=ro"
        engine = create_engine(
            "sqlite://", poolclass=NullPool,
            creator=lambda: sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False),
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy opens transactions: plain BEGIN below
            dbapi_conn.execute("PRAGMA busy_timeout=30000")

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")  # DEFERRED: a WAL snapshot, the bot's writers never wait for it
    else:
        engine = create_engine(
            normalise_url(url), poolclass=NullPool,
            connect_args={"options": "-c default_transaction_read_only=on", "connect_timeout": PG_CONNECT_TIMEOUT},
        )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        engine.dispose()
        raise unreachable(url, error) from None
    return engine


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalise_url(url)
    if is_sqlite(url):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def reader(engine: Engine) -> Engine:
    """The same engine (same pool) for transactions that only read: never write through it. On SQLite
    its transactions begin DEFERRED; on PostgreSQL nothing changes (readers never wait there)."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def _enable_wal(cursor: Any, patience: float = 30.0) -> None:
    """Switch the file to WAL (it stays so). The switch needs the file to itself, and SQLite answers
    "database is locked" at once, without its busy handler, when another process (a second replica
    starting at the same moment) holds it or is switching it too: try again, as long as the busy
    timeout would have waited."""
    deadline = time.monotonic() + patience
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02 + random.random() * 0.05)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    memory = make_url(url).database in (None, "", ":memory:")
    connect_args = {"check_same_thread": False, "timeout": 30}
    if memory:
        kwargs.setdefault("poolclass", NullPool)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, open transactions, so we can make them IMMEDIATE.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        if not memory:
            _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            # A read-only transaction (see `reader`): a WAL snapshot, no lock held, no waiting.
            conn.exec_driver_sql("BEGIN")
            return
        # Writers queue on the database lock from the start of the transaction instead of failing
        # with "database is locked" on upgrade; this is what keeps the hash chain single-file.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    _GATES[engine] = WriteGate()
    return engine


class WriteGate:
    """An in-process queue for SQLite's single write lock, with a fast lane.

    SQLite serialises writers anyway; without this, the threads of one process that wait for the lock
    wait in SQLite's busy handler, which sleeps 1, 2, 5, 10, 15… ms between tries however soon the lock
    is free. Queued here they are woken as soon as it is released, and an `urgent` writer (the record a
    Slack request needs before its ack) goes before the others. Only an optimisation: the database lock
    is still what guarantees correctness (other processes, and writers that do not pass here, take it
    as before). Never held across an await; a writer must not nest two holds."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._busy = False
        # Waiters, each parked on a lock of its own that the releasing writer opens: ownership passes
        # directly to one waiter (no herd of threads waking to find the gate taken again).
        self._urgent: collections.deque[threading.Lock] = collections.deque()
        self._normal: collections.deque[threading.Lock] = collections.deque()

    @contextmanager
    def hold(self, urgent: bool = False) -> Iterator[None]:
        with self._mutex:
            if not self._busy:
                self._busy = True
                parked = None
            else:
                parked = threading.Lock()
                parked.acquire()
                (self._urgent if urgent else self._normal).append(parked)
        if parked is not None:
            try:
                parked.acquire()  # opened by `_release`, which hands the gate over still busy
            except BaseException:  # interrupted while waiting: leave the queue, or pass on what came
                with self._mutex:
                    queue = self._urgent if urgent else self._normal
                    if parked in queue:
                        queue.remove(parked)
                        raise
                self._release()
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._mutex:
            queue = self._urgent or self._normal
            if queue:
                queue.popleft().release()
            else:
                self._busy = False


class _NoGate:
    @contextmanager
    def hold(self, urgent: bool = False) -> Iterator[None]:
        yield


_NO_GATE = _NoGate()
_GATES: weakref.WeakKeyDictionary[Engine, WriteGate] = weakref.WeakKeyDictionary()


def write_gate(engine: Engine) -> WriteGate | _NoGate:
    """The gate of a SQLite engine made by `make_engine`; a no-op elsewhere (PostgreSQL lets writers of
    different rows run at once, and orders ledger appends with its advisory lock)."""
    return _GATES.get(engine, _NO_GATE)

"""The append-only ledger: write one entry, read the trail, prove nothing was changed.

Every entry's hash covers every field and the previous entry's hash, so an edit, a removal or an
insertion anywhere is found by `verify`. Appends are serialised per database (an advisory lock on
PostgreSQL, the write lock on SQLite) so concurrent writers, threads or replicas, keep one chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, text
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.domain.clock import Clock, SystemClock
from db.models import LedgerEntry

GENESIS = "0" * 64
_CHAIN_LOCK_KEY = 0x5E50_1ED6  # pg_advisory_xact_lock key for "the ledger chain"
MAX_DETAIL = 4000
# The canonical form hashed: what json.dumps(material, ensure_ascii=False, separators=(",", ":"))
# gives, with the encoder built once (json.dumps builds one per call when given options).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class EntryDraft:
    """What a caller knows about an action; the ledger adds time, position and hashes."""

    actor: str
    action: str
    outcome: str
    channel: str | None = None
    team: str | None = None
    provider: str | None = None
    target: str | None = None
    detail: str = ""
    request_id: str | None = None


def chain_hash(
    seq: int,
    at: datetime,
    actor: str,
    team: str | None,
    channel: str | None,
    action: str,
    provider: str | None,
    target: str | None,
    outcome: str,
    detail: str,
    request_id: str | None,
    prev_hash: str,
) -> str:
    """SHA-256 over every field of an entry and the hash before it (field by field, for bulk
    loaders and `verify`, which work on rows rather than model objects)."""
    material = [
        seq,
        at.astimezone(UTC).isoformat(timespec="microseconds"),
        actor,
        team,
        channel,
        action,
        provider,
        target,
        outcome,
        detail,
        request_id,
        prev_hash,
    ]
    return hashlib.sha256(_CANONICAL.encode(material).encode("utf-8")).hexdigest()


def _column_limit(name: str) -> int | None:
    return getattr(LedgerEntry.__table__.c[name].type, "length", None)  # type: ignore[attr-defined]


_LIMITS = {name: _column_limit(name) for name in (
    "actor", "team", "channel", "action", "provider", "target", "outcome", "request_id")}


def _clean(value: str, limit: int | None) -> str:
    """What the database can hold, the same on every backend: PostgreSQL refuses NUL characters and
    strings longer than the column, SQLite would keep both. An entry must never fail to be written
    because a provider's id or error text is odd."""
    value = value.replace("\x00", "\ufffd")
    return value[:limit] if limit is not None else value


def _clean_opt(value: str | None, limit: int | None) -> str | None:
    return None if value is None else _clean(value, limit)


def _lock_chain(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK_KEY})
    # SQLite: every writing transaction begins IMMEDIATE (db/engine.py), so we already hold the write lock.


def _entry_values(draft: EntryDraft, at: datetime, last_seq: int, last_hash: str) -> dict[str, Any]:
    """The columns of the entry after (last_seq, last_hash), its hash included."""
    values: dict[str, Any] = {
        "seq": last_seq + 1,
        "at": at.astimezone(UTC),
        "actor": _clean(draft.actor, _LIMITS["actor"]),
        "team": _clean_opt(draft.team, _LIMITS["team"]),
        "channel": _clean_opt(draft.channel, _LIMITS["channel"]),
        "action": _clean(draft.action, _LIMITS["action"]),
        "provider": _clean_opt(draft.provider, _LIMITS["provider"]),
        "target": _clean_opt(draft.target, _LIMITS["target"]),
        "outcome": _clean(draft.outcome, _LIMITS["outcome"]),
        "detail": _clean(draft.detail, MAX_DETAIL),
        "request_id": _clean_opt(draft.request_id, _LIMITS["request_id"]),
        "prev_hash": last_hash,
    }
    values["hash"] = chain_hash(**values)
    return values


_LEDGER_T = LedgerEntry.__table__  # type: ignore[attr-defined]
_LAST = sa_select(_LEDGER_T.c.seq, _LEDGER_T.c.hash).order_by(_LEDGER_T.c.seq.desc()).limit(1)


def _next_entry(db: Connection, draft: EntryDraft, at: datetime) -> dict[str, Any]:
    """The columns of the entry that goes after the newest one, under the chain lock."""
    _lock_chain(db)
    last = db.execute(_LAST).first()
    last_seq, last_hash = (last[0], last[1]) if last else (0, GENESIS)
    return _entry_values(draft, at, last_seq, last_hash)


def append_row(conn: Connection, draft: EntryDraft, at: datetime) -> dict[str, Any]:
    """Add one entry inside the caller's transaction (a Core connection: every write of db/store.py is
    one); it is durable when the caller commits. Keeping it in the caller's transaction is what makes a
    state change and its ledger entry land together or not at all. Returns the entry's columns."""
    values = _next_entry(conn, draft, at)
    conn.execute(_LEDGER_T.insert(), values)
    return values


class Ledger:
    """The ledger bound to an engine and a clock, for callers that don't hold a session."""

    def __init__(self, engine: Engine, clock: Clock | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()

    def record(self, draft: EntryDraft) -> LedgerEntry:
        """One entry in a transaction of its own, written as the bot writes them (append_row)."""
        with self.engine.begin() as conn:
            return LedgerEntry(**append_row(conn, draft, self.clock.now()))

    def history(self, target: str) -> list[LedgerEntry]:
        """One message's or group's whole story, oldest first."""
        with Session(self.engine) as session:
            stmt = select(LedgerEntry).where(LedgerEntry.target == target).order_by(col(LedgerEntry.seq))
            return list(session.exec(stmt))

    def count(self) -> int:
        with Session(self.engine) as session:
            return int(session.exec(select(func.count()).select_from(LedgerEntry)).one())

    def verify(self, batch: int = 5000) -> VerifyResult:
        return verify(self.engine, batch=batch)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    problem: str | None = None
    bad_seq: int | None = None
    details: list[str] = field(default_factory=list)
    head: str = GENESIS  # the hash of the newest entry checked: what an operator anchors elsewhere


def iter_entries(engine: Engine, batch: int = 5000) -> Iterator[LedgerEntry]:
    """Every entry in chain order, read in pages (constant memory)."""
    after = 0
    while True:
        with Session(engine) as session:
            stmt = (
                select(LedgerEntry)
                .where(LedgerEntry.seq > after)
                .order_by(col(LedgerEntry.seq))
                .limit(batch)
            )
            rows = list(session.exec(stmt))
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


_CHAIN_COLUMNS = (
    "seq", "at", "actor", "team", "channel", "action", "provider", "target", "outcome", "detail",
    "request_id", "prev_hash", "hash",
)


def _iter_chain_rows(engine: Engine, batch: int) -> Iterator[Row[Any]]:
    """Like iter_entries, as plain rows: verify reads every entry, and model objects cost more."""
    table = LedgerEntry.__table__  # type: ignore[attr-defined]
    columns = [table.c[name] for name in _CHAIN_COLUMNS]
    after = 0
    while True:
        with engine.connect() as conn:
            stmt = sa_select(*columns).where(table.c.seq > after).order_by(table.c.seq).limit(batch)
            rows = conn.execute(stmt).all()
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def verify(engine: Engine, batch: int = 5000, anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the chain from the first entry; name the first entry that was edited, removed or inserted.

    The chain alone cannot show that its newest entries were cut off, or that all of it was
    recomputed after an edit. `anchor` is (seq, hash) of an entry as it was seen earlier and kept
    outside the database (from a previous run's `head`): the chain must still reach that entry, with
    that hash, which every entry before it determines."""
    expected_seq = 1
    prev_hash = GENESIS
    checked = 0
    for row in _iter_chain_rows(engine, batch):
        seq = row.seq
        if seq != expected_seq:
            return VerifyResult(
                False, checked,
                f"entry {expected_seq} is missing (the chain jumps from {expected_seq - 1} to {seq}):"
                " an entry was removed", expected_seq,
            )
        if row.prev_hash != prev_hash:
            return VerifyResult(
                False, checked,
                f"entry {seq} does not follow entry {seq - 1}: an entry was removed or inserted"
                " before it", seq,
            )
        digest = chain_hash(
            seq, row.at, row.actor, row.team, row.channel, row.action, row.provider, row.target,
            row.outcome, row.detail, row.request_id, row.prev_hash,
        )
        if digest != row.hash:
            return VerifyResult(
                False, checked,
                f"entry {seq} ({row.action} by {row.actor} at {row.at.isoformat()}) was edited:"
                " its contents no longer match its hash", seq,
            )
        if anchor is not None and seq == anchor[0] and row.hash != anchor[1]:
            return VerifyResult(
                False, checked,
                f"entry {seq} is not the entry anchored earlier (its hash differs): the chain was"
                " rewritten at or before it", seq, head=prev_hash,
            )
        prev_hash = row.hash
        expected_seq += 1
        checked += 1
    if anchor is not None and checked < anchor[0]:
        return VerifyResult(
            False, checked,
            f"entry {anchor[0]} was anchored earlier but the ledger now ends at entry {checked}:"
            " its newest entries were removed", checked + 1, head=prev_hash,
        )
    return VerifyResult(True, checked, head=prev_hash)

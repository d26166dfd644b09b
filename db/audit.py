"""Reading the audit trail: filtered queries for `/sms audit` and streamed exports for the CLI.

Order (the interface contract): a target's history is told oldest first; every other answer lists
the newest first. "Newest" is ledger order (`seq`), the order things were recorded in. `limit` takes
the first entries in that order (a target's oldest; otherwise the newest). "More" continues from
the last `seq` shown: `before_seq` keeps entries recorded before it (back in time, for newest-first
answers) and `after_seq` those recorded after it (forward, for a target's oldest-first history). So
an interactive answer is always one page (`limit`), however long the history: a busy id can have
hundreds of entries, and reading and building all of them costs tens of milliseconds
(bench/ledger_bench.py) where a page costs about one.

Every value is a bound parameter; nothing is pasted into SQL.

Indexes: target -> (target, seq); actor -> (actor, seq); provider -> (provider, seq); nothing ->
the primary key; each also gives the order, so `limit` stops the scan early. `since`/`until` use
(at, seq) to find which stretch of the chain they cover: when it is short (under _BOUND_PROBE
entries), its first and last `seq` bound the main query too, so a quiet period, or a `since` after
the last entry, costs a few index reads instead of a walk down the whole ledger. The bounds are
exact (`at` need not rise with `seq`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, event, func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from db.models import LedgerEntry, SlackName

_INT_MAX = 2**31 - 1  # seq is an INTEGER column; LIMIT is bound as one on PostgreSQL
_BOUND_PROBE = 2000  # a time range with fewer entries than this is turned into seq bounds


@dataclass
class AuditFilter:
    """What to look for. Strings match exactly (no wildcards, case-sensitive); `since` is
    inclusive, `until` exclusive, both timezone-aware; `before_seq` keeps entries with a smaller
    `seq`, `after_seq` entries with a larger one."""

    target: str | None = None
    actor: str | None = None
    provider: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    before_seq: int | None = None
    after_seq: int | None = None

    @property
    def oldest_first(self) -> bool:
        return self.target is not None


def _column_length(name: str) -> int | None:
    return getattr(LedgerEntry.__table__.c[name].type, "length", None)  # type: ignore[attr-defined]


_LENGTHS = {name: _column_length(name) for name in ("target", "actor", "provider")}


def _check(flt: AuditFilter) -> AuditFilter:
    """Refuse naive times; make out-of-range numbers mean what they say instead of erroring."""
    for name in ("since", "until"):
        value = getattr(flt, name)
        if value is not None and value.tzinfo is None:
            raise ValueError(f"audit filter {name!r} must be timezone-aware (UTC), got {value!r}")
    if flt.before_seq is not None and flt.before_seq > _INT_MAX:
        flt = replace(flt, before_seq=None)  # before every entry there can be
    if flt.after_seq is not None and flt.after_seq < 0:
        flt = replace(flt, after_seq=None)  # after every entry there is (seq starts at 1)
    if flt.limit is not None and flt.limit > _INT_MAX:
        flt = replace(flt, limit=None)
    return flt


def _can_match(flt: AuditFilter) -> bool:
    """False when no stored entry could match, so the database is not asked at all.

    The ledger never stores NUL (PostgreSQL can't, and db.ledger replaces it) nor a value longer
    than its column; sending such a value to PostgreSQL would be an error rather than "nothing"."""
    for name in ("target", "actor", "provider"):
        value = getattr(flt, name)
        if value is None:
            continue
        length = _LENGTHS[name]
        if "\x00" in value or (length is not None and len(value) > length):
            return False
    if flt.limit is not None and flt.limit <= 0:
        return False
    if flt.before_seq is not None and flt.before_seq <= 1:
        return False
    if flt.after_seq is not None and flt.after_seq >= _INT_MAX:
        return False  # no seq is larger (and a larger number would not bind as an INTEGER)
    if flt.before_seq is not None and flt.after_seq is not None and flt.before_seq - flt.after_seq <= 1:
        return False
    return not (flt.since is not None and flt.until is not None and flt.since >= flt.until)


def _time_conditions(flt: AuditFilter) -> list[Any]:
    at = col(LedgerEntry.at)
    where: list[Any] = []
    if flt.since is not None:
        where.append(at >= flt.since)
    if flt.until is not None:
        where.append(at < flt.until)
    return where


def _conditions(flt: AuditFilter, bounds: tuple[int, int] | None = None) -> list[Any]:
    seq = col(LedgerEntry.seq)
    where: list[Any] = []
    if flt.target is not None:
        where.append(col(LedgerEntry.target) == flt.target)
    if flt.actor is not None:
        where.append(col(LedgerEntry.actor) == flt.actor)
    if flt.provider is not None:
        where.append(col(LedgerEntry.provider) == flt.provider)
    where.extend(_time_conditions(flt))
    if flt.before_seq is not None:
        where.append(seq < flt.before_seq)
    if flt.after_seq is not None:
        where.append(seq > flt.after_seq)
    if bounds is not None:
        where.extend((seq >= bounds[0], seq <= bounds[1]))
    return where


_EMPTY = (0, -1)  # bounds no seq falls within


def _seq_bounds(session: Session, flt: AuditFilter) -> tuple[int, int] | None:
    """The first and last `seq` of the entries inside the filter's time range, when that range
    holds few entries; None when there is no time filter or the range is long (then the order
    index finds `limit` matches quickly on its own). A target's history is short: not needed."""
    if flt.target is not None or (flt.since is None and flt.until is None):
        return None
    seq = col(LedgerEntry.seq)
    probe = select(seq).where(*_time_conditions(flt)).limit(_BOUND_PROBE).subquery()
    count, low, high = session.exec(
        select(func.count(), func.min(probe.c.seq), func.max(probe.c.seq))
    ).one()
    if count == 0:
        return _EMPTY
    if count < _BOUND_PROBE:
        return (int(low), int(high))
    return None


def select_statement(flt: AuditFilter, bounds: tuple[int, int] | None = None) -> SelectOfScalar[LedgerEntry]:
    """The statement `query` runs, given the seq bounds it found (for EXPLAIN in tests and the
    benchmark)."""
    flt = _check(flt)
    seq = col(LedgerEntry.seq)
    stmt = select(LedgerEntry).where(*_conditions(flt, bounds))
    stmt = stmt.order_by(seq if flt.oldest_first else seq.desc())
    if flt.limit is not None:
        stmt = stmt.limit(flt.limit)
    return stmt


def query(engine: Engine, flt: AuditFilter) -> list[LedgerEntry]:
    """The matching entries, in the contract's order (see the module docstring)."""
    flt = _check(flt)
    if not _can_match(flt):
        return []
    with Session(engine) as session:
        bounds = _seq_bounds(session, flt)
        if bounds == _EMPTY:
            return []
        return list(session.exec(select_statement(flt, bounds)))


def stream(engine: Engine, flt: AuditFilter, batch: int = 5000) -> Iterator[LedgerEntry]:
    """The same entries as `query`, in the same order, read page by page (keyset pagination on
    `seq`, one short transaction a page) so an export of millions of entries runs in constant
    memory. Entries appended while it runs are not included."""
    flt = _check(flt)
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if not _can_match(flt):
        return
    seq = col(LedgerEntry.seq)
    with Session(engine) as session:
        top = session.exec(select(func.max(seq))).one()  # the ledger's end when the export began
        bounds = _seq_bounds(session, flt)
    if top is None or bounds == _EMPTY:
        return
    where = [*_conditions(flt, bounds), seq <= top]
    remaining = flt.limit
    cursor: int | None = None
    while remaining is None or remaining > 0:
        size = batch if remaining is None else min(batch, remaining)
        page = select(LedgerEntry).where(*where)
        if flt.oldest_first:
            if cursor is not None:
                page = page.where(seq > cursor)
            page = page.order_by(seq)
        else:
            if cursor is not None:
                page = page.where(seq < cursor)
            page = page.order_by(seq.desc())
        with Session(engine) as session:
            rows = list(session.exec(page.limit(size)))
        if not rows:
            return
        yield from rows
        if len(rows) < size:
            return
        cursor = rows[-1].seq
        if remaining is not None:
            remaining -= len(rows)


def explain(engine: Engine, flt: AuditFilter) -> str:
    """The database's plan for the statement `query` would run, with the same bound values (for
    tests, the benchmark and a curious operator; PostgreSQL's plan is EXPLAIN ANALYZE's)."""
    flt = _check(flt)
    captured: dict[str, Any] = {}

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        captured["sql"], captured["params"] = statement, parameters

    with Session(engine) as session:
        bounds = _seq_bounds(session, flt)
        stmt = select_statement(flt, bounds)
        conn = session.connection()
        event.listen(conn, "before_cursor_execute", grab)
        try:
            session.exec(stmt).all()
        finally:
            event.remove(conn, "before_cursor_execute", grab)
        prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF) "
        rows = conn.exec_driver_sql(prefix + captured["sql"], captured["params"]).all()
    return "\n".join(str(row[-1]).rstrip() for row in rows)


# How an action reads to people (Slack answers, the CLI's table); --json/--csv keep the contract's
# identifiers (interface.md, Ledger).
ACTION_WORDS: dict[str, str] = {
    "scheduled": "scheduled",
    "tracked": "tracked",
    "approval_requested": "asked for approval",
    "approved": "approved",
    "sent": "sent",
    "cancelled": "cancelled",
    "deleted": "deleted",
    "reminded": "reminded",
    "refused": "was refused",
    "failed": "failed",
    "rejected": "rejected",
    "expired": "expired",
}


def action_words(action: str) -> str:
    return ACTION_WORDS.get(action, action.replace("_", " "))


def names(engine: Engine) -> dict[str, str]:
    """Every Slack user id the bot has a name for → that name (a small table: one row a person)."""
    with Session(engine) as session:
        return {row.user_id: row.name for row in session.exec(select(SlackName))}


def ids_named(engine: Engine, name: str) -> list[str]:
    """The user ids that went by `name` (`@bob` or `bob`, any case)."""
    wanted = name.strip().lstrip("@").lower()
    with Session(engine) as session:
        rows = session.exec(select(SlackName).where(func.lower(col(SlackName.name)) == wanted))
        return sorted(row.user_id for row in rows)

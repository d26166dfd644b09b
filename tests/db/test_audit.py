"""db.audit: filters and their combinations, order, paging, streaming, hostile input, index use."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, inspect, text

from bot.domain.clock import FrozenClock
from db import audit
from db.audit import AuditFilter
from db.ledger import EntryDraft, Ledger, verify
from db.models import LedgerEntry

from .conftest import T0

ACTORS = ["U1", "U2", "system"]
PROVIDERS = ["telnyx", "solapi", "highlevel", None]
N = 40


def populate(ledger: Ledger, clock: FrozenClock) -> list[LedgerEntry]:
    entries = []
    for i in range(N):
        clock.set(T0 + timedelta(hours=i))
        entries.append(ledger.record(EntryDraft(
            actor=ACTORS[i % 3], action="scheduled", outcome="ok", channel="C1",
            provider=PROVIDERS[i % 4], target=f"m{i % 5}", detail=f"#{i}",
        )))
    return entries


@pytest.fixture
def entries(ledger: Ledger, clock: FrozenClock) -> list[LedgerEntry]:
    return populate(ledger, clock)


def expected(entries: list[LedgerEntry], flt: AuditFilter) -> list[int]:
    """The contract, spelled out in Python."""
    hits = [e for e in entries
            if (flt.target is None or e.target == flt.target)
            and (flt.actor is None or e.actor == flt.actor)
            and (flt.provider is None or e.provider == flt.provider)
            and (flt.since is None or e.at >= flt.since)
            and (flt.until is None or e.at < flt.until)
            and (flt.before_seq is None or e.seq < flt.before_seq)
            and (flt.after_seq is None or e.seq > flt.after_seq)]
    ordered = sorted((e.seq for e in hits), reverse=flt.target is None)
    return ordered if flt.limit is None else ordered[: flt.limit]


def seqs(rows: list[LedgerEntry]) -> list[int]:
    return [e.seq for e in rows]


def test_every_combination_of_filters(engine: Engine, entries: list[LedgerEntry]) -> None:
    combos = itertools.product(
        [None, "m1", "nope"],                 # target
        [None, "U1", "system"],               # actor
        [None, "telnyx", "solapi"],           # provider
        [None, T0 + timedelta(hours=10)],     # since (inclusive: entry 11 is at exactly this time)
        [None, T0 + timedelta(hours=30)],     # until (exclusive)
        [None, 3],                            # limit
        [None, 25],                           # before_seq
        [None, 7],                            # after_seq
    )
    checked = 0
    for target, actor, provider, since, until, limit, before, after in combos:
        flt = AuditFilter(target=target, actor=actor, provider=provider, since=since, until=until,
                          limit=limit, before_seq=before, after_seq=after)
        want = expected(entries, flt)
        assert seqs(audit.query(engine, flt)) == want, flt
        assert seqs(list(audit.stream(engine, flt, batch=4))) == want, flt
        checked += bool(want)
    assert checked > 100  # most combinations find something


def test_a_targets_history_is_oldest_first_and_the_rest_newest_first(engine: Engine,
                                                                       entries: list[LedgerEntry]) -> None:
    history = audit.query(engine, AuditFilter(target="m2"))
    assert seqs(history) == [3, 8, 13, 18, 23, 28, 33, 38]
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert seqs(audit.query(engine, AuditFilter(actor="U2"))) == list(range(38, 0, -3))
    assert seqs(audit.query(engine, AuditFilter(limit=3))) == [40, 39, 38]
    assert seqs(audit.query(engine, AuditFilter(target="m2", limit=3))) == [3, 8, 13]  # the story's start


def test_since_and_until(engine: Engine, entries: list[LedgerEntry]) -> None:
    since = T0 + timedelta(hours=35)
    assert seqs(audit.query(engine, AuditFilter(since=since))) == [40, 39, 38, 37, 36]
    assert seqs(audit.query(engine, AuditFilter(since=since - timedelta(microseconds=1)))) == [40, 39, 38, 37, 36]
    assert seqs(audit.query(engine, AuditFilter(since=since + timedelta(microseconds=1)))) == [40, 39, 38, 37]
    assert seqs(audit.query(engine, AuditFilter(until=T0 + timedelta(hours=2)))) == [2, 1]
    # any offset: 2026-11-03T05:00+09:00 is 2026-11-02T20:00Z
    kst = datetime(2026, 11, 3, 5, 0, tzinfo=ZoneInfo("Asia/Seoul"))
    assert seqs(audit.query(engine, AuditFilter(since=kst))) == [40, 39, 38, 37, 36]
    assert audit.query(engine, AuditFilter(since=T0 + timedelta(days=30))) == []
    assert audit.query(engine, AuditFilter(since=since, until=since)) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        audit.query(engine, AuditFilter(since=datetime(2026, 11, 1)))


def test_paging_with_before_seq_walks_everything_once(engine: Engine, entries: list[LedgerEntry]) -> None:
    for flt in (AuditFilter(actor="U1", limit=4), AuditFilter(limit=7), AuditFilter(provider="telnyx", limit=3),
                AuditFilter(since=T0 + timedelta(hours=5), limit=6)):
        pages: list[list[int]] = []
        before = None
        while True:
            page = seqs(audit.query(engine, AuditFilter(**{**flt.__dict__, "before_seq": before})))
            if not page:
                break
            pages.append(page)
            before = page[-1]
        flat = [s for page in pages for s in page]
        full = expected(entries, AuditFilter(**{**flt.__dict__, "limit": None}))
        assert sorted(flat) == sorted(full)
        assert len(flat) == len(set(flat))
        assert all(len(page) <= (flt.limit or 0) for page in pages)


def test_a_targets_history_pages_forward_with_after_seq(engine: Engine, ledger: Ledger,
                                                        entries: list[LedgerEntry]) -> None:
    # `/sms audit <id>` shows one page, oldest first; More continues after the last entry shown.
    for n in range(23):
        ledger.record(EntryDraft(actor="U1", action="reminded", outcome="ok", provider="telnyx", target="busy",
                                 detail=f"#{n}"))
    whole = seqs(audit.query(engine, AuditFilter(target="busy")))
    assert len(whole) == 23
    pages: list[list[int]] = []
    after = None
    while page := seqs(audit.query(engine, AuditFilter(target="busy", limit=10, after_seq=after))):
        pages.append(page)
        after = page[-1]
    assert [len(page) for page in pages] == [10, 10, 3]
    assert [s for page in pages for s in page] == whole  # in order, each once
    assert [e.seq for e in audit.stream(engine, AuditFilter(target="busy", after_seq=whole[9]), batch=4)] == \
        whole[10:]


def test_stream_reads_in_pages_and_ignores_later_appends(engine: Engine, ledger: Ledger, clock: FrozenClock,
                                                         entries: list[LedgerEntry]) -> None:
    it = audit.stream(engine, AuditFilter(), batch=3)
    first = next(it)
    assert first.seq == N
    ledger.record(EntryDraft(actor="U9", action="sent", outcome="ok"))  # appended mid-export
    rest = [e.seq for e in it]
    assert rest == list(range(N - 1, 0, -1))
    oldest_first = [e.seq for e in audit.stream(engine, AuditFilter(target="m4"), batch=2)]
    assert oldest_first == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [e.seq for e in audit.stream(engine, AuditFilter(limit=5), batch=2)] == [41, 40, 39, 38, 37]
    with pytest.raises(ValueError):
        list(audit.stream(engine, AuditFilter(), batch=0))


def test_empty_ledger(engine: Engine) -> None:
    assert audit.query(engine, AuditFilter()) == []
    assert list(audit.stream(engine, AuditFilter())) == []
    assert list(audit.stream(engine, AuditFilter(target="x", limit=3))) == []


def test_nonsense_limits_find_nothing(engine: Engine, entries: list[LedgerEntry]) -> None:
    assert audit.query(engine, AuditFilter(limit=0)) == []
    assert audit.query(engine, AuditFilter(limit=-5)) == []
    assert audit.query(engine, AuditFilter(before_seq=1)) == []
    assert audit.query(engine, AuditFilter(before_seq=-3)) == []
    assert audit.query(engine, AuditFilter(after_seq=N)) == []
    assert audit.query(engine, AuditFilter(after_seq=10**12)) == []
    assert audit.query(engine, AuditFilter(after_seq=5, before_seq=6)) == []
    assert seqs(audit.query(engine, AuditFilter(after_seq=5, before_seq=7))) == [6]
    assert len(audit.query(engine, AuditFilter(after_seq=-10**12))) == N
    assert seqs(audit.query(engine, AuditFilter(before_seq=10**12, limit=1))) == [N]
    assert len(audit.query(engine, AuditFilter(limit=10**12))) == N
    assert [e.seq for e in audit.stream(engine, AuditFilter(before_seq=10**12, limit=10**12), batch=7)] == \
        list(range(N, 0, -1))


HOSTILE = [
    "'; DROP TABLE ledger_entries; --",
    "\"; DROP TABLE ledger_entries; --",
    "%", "_", "m%", "m_", "*", "m1' OR '1'='1", "m1\" OR \"1\"=\"1", "\\", "\\'",
    "\x00", "m1\x00", "m1\x00' OR 1=1 --",
    "x" * 100_000, "m1" + " " * 200,
    "m1 ", " m1", "M1", "u1", "SYSTEM",
    "<@U1>", "U1|name", "\u202eU1", "😀", "",
]


@pytest.mark.parametrize("field", ["target", "actor", "provider"])
def test_hostile_strings_find_nothing_and_break_nothing(engine: Engine, entries: list[LedgerEntry],
                                                        field: str) -> None:
    for value in HOSTILE:
        flt = AuditFilter(**{field: value})
        assert audit.query(engine, flt) == [], repr(value[:40])
        assert list(audit.stream(engine, flt)) == [], repr(value[:40])
        combined = AuditFilter(**{field: value}, since=T0, limit=5, before_seq=30)
        assert audit.query(engine, combined) == []
    assert "ledger_entries" in inspect(engine).get_table_names()
    result = verify(engine)
    assert result.ok and result.checked == N


def test_hostile_strings_stored_are_found_exactly(engine: Engine, ledger: Ledger,
                                                 entries: list[LedgerEntry]) -> None:
    stored = [v for v in HOSTILE if v and "\x00" not in v and len(v) <= 64]
    for value in stored:
        ledger.record(EntryDraft(actor=value, action="refused", outcome="refused", target=value))
    for value in stored:
        by_target = audit.query(engine, AuditFilter(target=value))
        assert [e.target for e in by_target] == [value], repr(value)
        assert [e.actor for e in audit.query(engine, AuditFilter(actor=value))] == [value], repr(value)
    # a NUL can't be stored (PostgreSQL refuses it): the ledger keeps a replacement character
    ledger.record(EntryDraft(actor="U1", action="refused", outcome="refused", target="a\x00b"))
    assert audit.query(engine, AuditFilter(target="a\x00b")) == []
    assert len(audit.query(engine, AuditFilter(target="a\ufffdb"))) == 1
    assert verify(engine).ok


# --- every query shape has an index to use -------------------------------------------------------

SHAPES = {
    "target": (AuditFilter(target="m1"), "ix_ledger_target_seq"),
    "target since": (AuditFilter(target="m1", since=T0), "ix_ledger_target_seq"),
    "target page": (AuditFilter(target="m1", limit=21), "ix_ledger_target_seq"),
    "target next page": (AuditFilter(target="m1", limit=21, after_seq=6), "ix_ledger_target_seq"),
    "actor last 50": (AuditFilter(actor="U1", limit=50), "ix_ledger_actor_seq"),
    "actor page": (AuditFilter(actor="U1", limit=50, before_seq=20), "ix_ledger_actor_seq"),
    "actor since": (AuditFilter(actor="U1", since=T0 + timedelta(hours=30), limit=50), "ix_ledger_actor_seq"),
    "provider since": (AuditFilter(provider="telnyx", since=T0, limit=50), "ix_ledger_provider_seq"),
    "provider": (AuditFilter(provider="telnyx", limit=50), "ix_ledger_provider_seq"),
}


@pytest.fixture
def no_seqscan(engine: Engine) -> Engine:
    """PostgreSQL reads a 40-row table whole, as it should; ask what it *could* use instead."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy import event

        @event.listens_for(engine, "connect")
        def _off(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                cur.execute("SET enable_seqscan = off")
                cur.execute("SET enable_bitmapscan = off")
            dbapi_conn.commit()

        engine.dispose()
    return engine


@pytest.mark.parametrize("shape", SHAPES)
def test_each_query_shape_uses_an_index(no_seqscan: Engine, entries: list[LedgerEntry], shape: str) -> None:
    engine = no_seqscan
    flt, index = SHAPES[shape]
    got = audit.explain(engine, flt)
    if engine.dialect.name == "sqlite":
        assert f"USING INDEX {index}" in got or f"USING COVERING INDEX {index}" in got, got
        assert "TEMP B-TREE" not in got, got  # the index gives the order too
    else:
        assert "Seq Scan" not in got and "Sort" not in got, got
    for unfiltered in (AuditFilter(limit=50), AuditFilter(since=T0, limit=50), AuditFilter(before_seq=9, limit=5)):
        got = audit.explain(engine, unfiltered)
        assert "Seq Scan" not in got and "TEMP B-TREE" not in got and "Sort" not in got, got


def test_a_short_time_range_bounds_the_scan(engine: Engine, entries: list[LedgerEntry]) -> None:
    got = audit.explain(engine, AuditFilter(actor="U1", since=T0 + timedelta(hours=30), limit=50))
    assert "seq >" in got.replace(">=", ">") or "seq>" in got, got
    assert audit.query(engine, AuditFilter(since=T0 + timedelta(days=400))) == []


def test_queries_are_parameterised(engine: Engine) -> None:
    flt = AuditFilter(target="'; x", actor="a", provider="p", since=T0, until=T0, limit=3, before_seq=9,
                      after_seq=4)
    sql = str(audit.select_statement(flt).compile(engine))
    assert "'; x" not in sql and "2026" not in sql
    assert sql.count("?") + sql.count("%(") >= 8


def test_nothing_is_written(engine: Engine, entries: list[LedgerEntry]) -> None:
    before = verify(engine)
    audit.query(engine, AuditFilter(target="'; DELETE FROM ledger_entries; --"))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one() == N
    assert verify(engine).checked == before.checked

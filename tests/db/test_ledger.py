"""The ledger's chain: appends, and verify finding every kind of tampering, on both databases."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, func, select, text
from sqlmodel import Session

from bot.domain.clock import FrozenClock
from db.ledger import GENESIS, MAX_DETAIL, EntryDraft, Ledger, append_row, chain_hash, verify
from db.models import LedgerEntry, UTCDateTime

ROOT = Path(__file__).resolve().parents[2]


def draft(i: int, **overrides: str | None) -> EntryDraft:
    fields: dict[str, str | None] = {
        "actor": f"U{i % 3:03d}",
        "action": ["scheduled", "reminded", "sent", "cancelled"][i % 4],
        "outcome": "ok",
        "channel": "C1",
        "team": "T1",
        "provider": ["telnyx", "solapi", "highlevel"][i % 3],
        "target": f"msg-{i % 4}",
        "detail": f"entry number {i}",
        "request_id": f"req-{i}",
    }
    fields.update(overrides)
    return EntryDraft(**fields)  # type: ignore[arg-type]


def fill(ledger: Ledger, clock: FrozenClock, n: int) -> list[LedgerEntry]:
    entries = []
    for i in range(n):
        entries.append(ledger.record(draft(i)))
        clock.advance(timedelta(seconds=7, microseconds=1234))
    return entries


def execute(engine: Engine, sql: str, **params: object) -> int:
    stmt = text(sql)
    if isinstance(params.get("value"), datetime):
        stmt = stmt.bindparams(bindparam("value", type_=UTCDateTime()))
    with engine.begin() as conn:
        return conn.execute(stmt, params).rowcount


def seqs(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT seq FROM ledger_entries ORDER BY seq")).scalars())


# --- appends -------------------------------------------------------------------------------------


def test_append_chains_entries_and_verify_passes(engine: Engine, ledger: Ledger, clock: FrozenClock) -> None:
    assert verify(engine).ok and verify(engine).checked == 0
    entries = fill(ledger, clock, 5)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    stored = ledger.history("msg-1")
    assert [e.seq for e in stored] == [2]
    assert stored[0].at == T0_plus(7.001234)
    assert stored[0].hash == rehash(stored[0]) == entries[1].hash
    result = verify(engine)
    assert result.ok and result.checked == 5 and result.problem is None
    assert ledger.count() == 5


def rehash(entry: Any) -> str:
    """The hash an entry's fields give, as a forger would recompute it."""
    fields = ("seq", "at", "actor", "team", "channel", "action", "provider", "target", "outcome", "detail",
              "request_id", "prev_hash")
    return chain_hash(**{name: getattr(entry, name) for name in fields})


def T0_plus(seconds: float) -> datetime:
    from tests.db.conftest import T0

    return T0 + timedelta(seconds=seconds)


def test_append_is_part_of_the_callers_transaction(engine: Engine, clock: FrozenClock) -> None:
    with engine.connect() as conn:
        append_row(conn, draft(0), clock.now())
        conn.rollback()
    with engine.begin() as conn:
        entry = append_row(conn, draft(1), clock.now())
    assert entry["seq"] == 1
    assert verify(engine).ok


def test_odd_strings_are_stored_the_same_on_every_database(engine: Engine, ledger: Ledger) -> None:
    entry = ledger.record(draft(0, actor="U\x00X", target="t" * 500, detail="d\x00" + "x" * 10_000,
                                channel="한국어 채널 ✓", provider=None, team=None, request_id=None))
    assert entry.actor == "U\ufffdX"
    assert entry.target == "t" * 128
    assert len(entry.detail) == MAX_DETAIL and "\x00" not in entry.detail
    [stored] = Ledger(engine).history("t" * 128)
    assert stored.channel == "한국어 채널 ✓" and stored.provider is None
    assert verify(engine).ok


def test_chain_hash_covers_every_field() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    args: list[object] = [1, at, "U1", "T1", "C1", "sent", "telnyx", "m1", "ok", "d", "r", GENESIS]
    base = chain_hash(*args)  # type: ignore[arg-type]
    for i in range(len(args)):
        changed = list(args)
        changed[i] = at + timedelta(microseconds=1) if i == 1 else (2 if i == 0 else f"{args[i]}!")
        assert chain_hash(*changed) != base, i  # type: ignore[arg-type]
    changed = list(args)
    changed[3] = None  # None and "None" differ
    assert chain_hash(*changed) != chain_hash(*[*args[:3], "None", *args[4:]])  # type: ignore[arg-type]


# --- tampering -----------------------------------------------------------------------------------

TEXT_FIELDS = ["actor", "team", "channel", "action", "provider", "target", "outcome", "detail",
               "request_id", "prev_hash", "hash"]


@pytest.mark.parametrize("field", [*TEXT_FIELDS, "at", "null"])
def test_editing_any_field_of_any_entry_is_found(engine: Engine, ledger: Ledger, clock: FrozenClock,
                                                 field: str) -> None:
    entries = fill(ledger, clock, 6)
    for victim in entries:
        if field == "at":
            original: object = victim.at
            execute(engine, "UPDATE ledger_entries SET at = :value WHERE seq = :seq",
                    value=victim.at + timedelta(microseconds=1), seq=victim.seq)
            restore = "UPDATE ledger_entries SET at = :value WHERE seq = :seq"
        elif field == "null":  # an optional field blanked out
            original = victim.team
            execute(engine, "UPDATE ledger_entries SET team = NULL WHERE seq = :seq", seq=victim.seq)
            restore = "UPDATE ledger_entries SET team = :value WHERE seq = :seq"
        else:
            original = getattr(victim, field)
            forged = ("f" * 64) if field in ("hash", "prev_hash") else f"{original}x"[:16]
            if field == "detail":
                forged = original + " (edited)"  # type: ignore[operator]
            execute(engine, f"UPDATE ledger_entries SET {field} = :value WHERE seq = :seq",
                    value=forged, seq=victim.seq)
            restore = f"UPDATE ledger_entries SET {field} = :value WHERE seq = :seq"
        result = verify(engine)
        assert not result.ok, (field, victim.seq)
        assert result.bad_seq == victim.seq, (field, victim.seq, result.problem)
        assert f"entry {victim.seq} " in (result.problem or "")
        assert result.checked == victim.seq - 1
        execute(engine, restore, value=original, seq=victim.seq)
        assert verify(engine).ok, (field, victim.seq)


def test_editing_the_hash_of_the_next_entry_too_is_still_found(engine: Engine, ledger: Ledger,
                                                               clock: FrozenClock) -> None:
    """A forger who rewrites an entry and recomputes its hash breaks the link to the next one."""
    entries = fill(ledger, clock, 5)
    victim = entries[2]
    victim.actor = "UFORGED"
    victim.hash = rehash(victim)
    execute(engine, "UPDATE ledger_entries SET actor = 'UFORGED', hash = :value WHERE seq = 3", value=victim.hash)
    result = verify(engine)
    assert not result.ok and result.bad_seq == 4
    assert "entry 4 does not follow entry 3" in (result.problem or "")


@pytest.mark.parametrize("gone", [1, 3, 4])  # the first, one in the middle, the last but one (of 5)
def test_deleting_an_entry_is_found(engine: Engine, ledger: Ledger, clock: FrozenClock, gone: int) -> None:
    fill(ledger, clock, 5)
    assert execute(engine, "DELETE FROM ledger_entries WHERE seq = :seq", seq=gone) == 1
    result = verify(engine)
    assert not result.ok and result.bad_seq == gone
    assert f"entry {gone} is missing" in (result.problem or "")


def test_deleting_an_entry_and_renumbering_the_rest_is_found(engine: Engine, ledger: Ledger,
                                                             clock: FrozenClock) -> None:
    fill(ledger, clock, 6)
    execute(engine, "DELETE FROM ledger_entries WHERE seq = 3")
    execute(engine, "UPDATE ledger_entries SET seq = seq + 1000 WHERE seq > 3")
    execute(engine, "UPDATE ledger_entries SET seq = seq - 1001 WHERE seq > 1000")
    assert seqs(engine) == [1, 2, 3, 4, 5]
    result = verify(engine)
    assert not result.ok and result.bad_seq == 3
    assert "entry 3 does not follow entry 2" in (result.problem or "")


def _forge(engine: Engine, seq: int, prev_hash: str, *, honest_hash: bool) -> None:
    at = datetime(2026, 11, 1, 9, 0, 30, tzinfo=UTC)
    fields = dict(seq=seq, at=at, actor="U999", team="T1", channel="C1", action="cancelled",
                  provider="telnyx", target="msg-x", outcome="ok", detail="forged", request_id=None,
                  prev_hash=prev_hash)
    digest = chain_hash(**fields) if honest_hash else "e" * 64  # type: ignore[arg-type]
    with Session(engine) as session:
        session.add(LedgerEntry(**fields, hash=digest))  # type: ignore[arg-type]
        session.commit()


def test_inserting_a_forged_entry_in_the_middle_is_found(engine: Engine, ledger: Ledger,
                                                         clock: FrozenClock) -> None:
    entries = fill(ledger, clock, 5)
    execute(engine, "UPDATE ledger_entries SET seq = seq + 1000 WHERE seq >= 3")
    execute(engine, "UPDATE ledger_entries SET seq = seq - 999 WHERE seq > 1000")
    _forge(engine, 3, entries[1].hash, honest_hash=True)  # even linked to entry 2 and hashed right
    assert seqs(engine) == [1, 2, 3, 4, 5, 6]
    result = verify(engine)
    assert not result.ok and result.bad_seq == 4
    assert "entry 4 does not follow entry 3" in (result.problem or "")


def test_inserting_a_forged_entry_at_the_end_with_a_made_up_hash_is_found(engine: Engine, ledger: Ledger,
                                                                          clock: FrozenClock) -> None:
    entries = fill(ledger, clock, 4)
    _forge(engine, 5, entries[-1].hash, honest_hash=False)
    result = verify(engine)
    assert not result.ok and result.bad_seq == 5 and "entry 5 (cancelled by U999" in (result.problem or "")


def test_inserting_a_forged_entry_unlinked_is_found(engine: Engine, ledger: Ledger, clock: FrozenClock) -> None:
    fill(ledger, clock, 4)
    _forge(engine, 5, "a" * 64, honest_hash=True)
    result = verify(engine)
    assert not result.ok and result.bad_seq == 5


def test_inserting_past_the_end_leaves_a_gap_that_is_found(engine: Engine, ledger: Ledger,
                                                           clock: FrozenClock) -> None:
    entries = fill(ledger, clock, 4)
    _forge(engine, 9, entries[-1].hash, honest_hash=True)
    result = verify(engine)
    assert not result.ok and result.bad_seq == 5 and "entry 5 is missing" in (result.problem or "")


def test_verify_pages_through_a_long_chain(engine: Engine, ledger: Ledger, clock: FrozenClock) -> None:
    fill(ledger, clock, 23)
    assert verify(engine, batch=5).checked == 23
    execute(engine, "UPDATE ledger_entries SET outcome = 'error' WHERE seq = 17")
    result = verify(engine, batch=5)
    assert not result.ok and result.bad_seq == 17 and result.checked == 16


# --- concurrency ---------------------------------------------------------------------------------


def test_threads_appending_concurrently_keep_one_chain(engine: Engine) -> None:
    threads_n, per_thread = 8, 50
    ledger = Ledger(engine)  # the system clock: real interleaving
    errors: list[BaseException] = []
    start = threading.Barrier(threads_n)

    def worker(k: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                ledger.record(draft(i, actor=f"U{k}", detail=f"thread {k} entry {i}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    assert not errors, errors
    assert seqs(engine) == list(range(1, threads_n * per_thread + 1))
    result = verify(engine)
    assert result.ok and result.checked == 400, result.problem
    with engine.connect() as conn:
        per_actor = dict(conn.execute(
            select(LedgerEntry.actor, func.count()).group_by(LedgerEntry.actor)  # type: ignore[arg-type]
        ).all())
    assert per_actor == {f"U{k}": per_thread for k in range(threads_n)}


WORKER = textwrap.dedent("""
    import sys
    from db.engine import make_engine
    from db.ledger import EntryDraft, Ledger
    url, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    engine = make_engine(url)
    ledger = Ledger(engine)
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()  # go
    for i in range(n):
        ledger.record(EntryDraft(actor=name, action="reminded", outcome="ok", target=f"{name}-{i}"))
    engine.dispose()
""")


def test_processes_appending_concurrently_keep_one_chain(database_url: str, engine: Engine) -> None:
    per_process = 100
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, database_url, f"P{k}", str(per_process)],
                         cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for k in range(2)
    ]
    for p in procs:  # both connected and waiting, then both released at once
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert seqs(engine) == list(range(1, 2 * per_process + 1))
    result = verify(engine)
    assert result.ok and result.checked == 2 * per_process, result.problem
    with engine.connect() as conn:
        actors = list(conn.execute(text("SELECT actor FROM ledger_entries ORDER BY seq")).scalars())
    switches = sum(1 for a, b in itertools.pairwise(actors) if a != b)
    assert switches >= 1  # they really did interleave (or at least both wrote)


def test_the_hash_format_is_stable() -> None:
    """Entries already written must keep verifying: the canonical form may never change."""
    at = datetime(2026, 11, 24, 0, 0, 0, 123456, tzinfo=UTC)
    digest = chain_hash(7, at, "U1", None, "C1", "sent", "telnyx", "t-1", "ok", '한국어 "x"\n', None, GENESIS)
    assert digest == "62204859f2642506f1de266e84467a50ce6414a3fadeaf122b2cf12bb898315f"

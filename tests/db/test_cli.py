"""bot.cli.audit: `python -m bot audit` and `python -m bot verify-ledger`, called as functions."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import DBAPIError

from bot.cli.audit import UsageError, audit_main, parse_when, verify_main
from bot.domain.clock import FrozenClock
from db.engine import make_engine, open_read_only
from db.ledger import EntryDraft, Ledger, chain_hash
from db.migrate import current_revision, head_revision
from db.models import LedgerEntry

KEYS = ["at", "actor", "channel", "action", "provider", "target", "outcome", "detail"]
NOW = datetime.now(UTC).replace(microsecond=0)
TELNYX_ID = "4f3c2b1a-0000-4000-8000-1234567890ab"


@pytest.fixture
def filled(engine: Engine) -> list[LedgerEntry]:
    clock = FrozenClock(NOW - timedelta(days=10))
    ledger = Ledger(engine, clock)
    out = [ledger.record(EntryDraft(actor="U1", action="scheduled", outcome="ok", channel="C1",
                                    provider="telnyx", target=TELNYX_ID, detail="send_at 2026-11-24T09:00Z"))]
    clock.set(NOW - timedelta(days=2))
    out.append(ledger.record(EntryDraft(actor="U2", action="scheduled", outcome="ok", channel="C2",
                                        provider="solapi", target="G4V20261101ABCDEF",
                                        detail='with "quotes", commas\nand a newline')))
    clock.set(NOW - timedelta(hours=1))
    out.append(ledger.record(EntryDraft(actor="system", action="reminded", outcome="ok", channel="C1",
                                        provider="telnyx", target=TELNYX_ID, detail="15m before send_at")))
    clock.set(NOW - timedelta(minutes=10))
    out.append(ledger.record(EntryDraft(actor="U1", action="refused", outcome="refused", channel="C1",
                                        provider=None, target=None, detail="한국어 ✓")))
    return out


def run_audit(capsys: pytest.CaptureFixture[str], url: str, *argv: str) -> tuple[int, str, str]:
    code = audit_main(list(argv), url)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_lines(out: str) -> list[dict[str, str | None]]:
    return [json.loads(line) for line in out.splitlines()]


def test_json_has_exactly_the_contract_keys_newest_first(capsys: pytest.CaptureFixture[str], database_url: str,
                                                         filled: list[LedgerEntry]) -> None:
    code, out, err = run_audit(capsys, database_url, "--json")
    assert code == 0 and err == ""
    rows = json_lines(out)
    assert [list(r) for r in rows] == [KEYS] * 4
    assert [r["action"] for r in rows] == ["refused", "reminded", "scheduled", "scheduled"]
    assert rows[0] == {"at": (NOW - timedelta(minutes=10)).isoformat().replace("+00:00", "Z"), "actor": "U1",
                       "channel": "C1", "action": "refused", "provider": None, "target": None,
                       "outcome": "refused", "detail": "한국어 ✓"}
    assert rows[2]["detail"] == 'with "quotes", commas\nand a newline'
    assert out.count("\n") == 4  # one object a line, even with a newline in a detail


def test_target_history_is_oldest_first(capsys: pytest.CaptureFixture[str], database_url: str,
                                        filled: list[LedgerEntry]) -> None:
    for target in (TELNYX_ID, f"telnyx:{TELNYX_ID}"):
        code, out, _ = run_audit(capsys, database_url, "--json", "--target", target)
        assert code == 0
        assert [r["action"] for r in json_lines(out)] == ["scheduled", "reminded"]
    code, out, _ = run_audit(capsys, database_url, "--json", "--target", f"solapi:{TELNYX_ID}")
    assert code == 0 and out == ""
    code, _, err = run_audit(capsys, database_url, "--target", f"solapi:{TELNYX_ID}", "--provider", "telnyx")
    assert code == 2 and "--provider" in err


def test_filters(capsys: pytest.CaptureFixture[str], database_url: str, filled: list[LedgerEntry]) -> None:
    def actions(*argv: str) -> list[str | None]:
        code, out, err = run_audit(capsys, database_url, "--json", *argv)
        assert code == 0, err
        return [r["action"] for r in json_lines(out)]

    assert actions("--actor", "U1") == ["refused", "scheduled"]
    assert actions("--actor", "U1", "--limit", "1") == ["refused"]
    assert actions("--provider", "telnyx") == ["reminded", "scheduled"]
    assert actions("--provider", "CoolSMS") == ["scheduled"]  # the alias of solapi
    assert actions("--since", "3d") == ["refused", "reminded", "scheduled"]
    assert actions("--since", "30m") == ["refused"]
    assert actions("--since", "90m", "--actor", "system") == ["reminded"]
    assert actions("--until", "1d") == ["scheduled", "scheduled"]
    since = (NOW - timedelta(hours=2)).astimezone(UTC)
    assert actions("--since", since.isoformat().replace("+00:00", "Z")) == ["refused", "reminded"]
    assert actions("--since", since.isoformat()) == ["refused", "reminded"]
    in_kst = since.astimezone(datetime.now().astimezone().tzinfo).isoformat()
    assert actions("--since", in_kst) == ["refused", "reminded"]
    assert actions("--since", (NOW + timedelta(days=2)).date().isoformat()) == []
    everything = ["refused", "reminded", "scheduled", "scheduled"]
    assert actions("--since", (NOW - timedelta(days=20)).date().isoformat()) == everything
    assert actions("--actor", "'; DROP TABLE ledger_entries; --") == []
    assert actions("--target", "%") == []
    assert len(actions()) == 4


def test_csv(capsys: pytest.CaptureFixture[str], database_url: str, filled: list[LedgerEntry]) -> None:
    code, out, err = run_audit(capsys, database_url, "--csv")
    assert code == 0 and err == ""
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == KEYS
    assert len(rows) == 5
    assert rows[3][KEYS.index("detail")] == 'with "quotes", commas\nand a newline'
    assert rows[1][KEYS.index("provider")] == ""  # None is an empty cell
    code, out, _ = run_audit(capsys, database_url, "--csv", "--actor", "nobody")
    assert code == 0 and list(csv.reader(io.StringIO(out))) == [KEYS]  # a header even when empty


def test_table_is_human_readable(capsys: pytest.CaptureFixture[str], database_url: str,
                                 filled: list[LedgerEntry]) -> None:
    code, out, err = run_audit(capsys, database_url)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["at", "actor", "action", "provider", "target", "outcome", "channel", "detail"]
    assert len(lines) == 6 and lines[-1] == "(4 entries)"
    assert "refused" in lines[1] and "한국어 ✓" in lines[1]
    assert "commas and a newline" in lines[3]  # one line per entry
    assert TELNYX_ID in lines[2]
    code, out, _ = run_audit(capsys, database_url, "--actor", "U2")
    assert out.splitlines()[-1] == "(1 entry)"


@pytest.mark.parametrize("argv", [
    ["--since", "yesterday"], ["--since", "2026-13-45"], ["--since", "2026-11-01T09:00"], ["--since", ""],
    ["--since", "7x"], ["--since", "-7d"], ["--limit", "0"], ["--limit", "ten"], ["--json", "--csv"],
    ["--bogus"], ["extra"], ["--until", "soon"],
])
def test_bad_arguments_exit_2_with_a_message(capsys: pytest.CaptureFixture[str], database_url: str,
                                             argv: list[str]) -> None:
    code, out, err = run_audit(capsys, database_url, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("audit: ") and "usage:" in err


def test_help_exits_0(capsys: pytest.CaptureFixture[str], database_url: str) -> None:
    code, out, _ = run_audit(capsys, database_url, "--help")
    assert code == 0 and "--since" in out
    assert verify_main(["--help"], database_url) == 0


def test_parse_when() -> None:
    now = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    assert parse_when("7d", now) == now - timedelta(days=7)
    assert parse_when("12h", now) == now - timedelta(hours=12)
    assert parse_when("30m", now) == now - timedelta(minutes=30)
    assert parse_when("90s ago", now) == now - timedelta(seconds=90)
    assert parse_when("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_when("2026-11-24T09:00+09:00") == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert parse_when("2026-11-24T09:00:00.5Z") == datetime(2026, 11, 24, 9, 0, 0, 500000, tzinfo=UTC)
    for bad in ("", "7", "d", "2026-11-24T09:00", "next week", "2026-02-30"):
        with pytest.raises(UsageError):
            parse_when(bad, now)


def test_verify_intact_and_broken(capsys: pytest.CaptureFixture[str], database_url: str, engine: Engine,
                                  filled: list[LedgerEntry]) -> None:
    assert verify_main([], database_url) == 0
    assert capsys.readouterr().out == f"ledger intact: 4 entries; newest 4:{filled[-1].hash}\n"
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET actor = 'U2' WHERE seq = 3"))
    assert verify_main([], database_url) == 1
    out = capsys.readouterr().out
    assert "entry 3" in out and "edited" in out
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET actor = 'system' WHERE seq = 3"))
        conn.execute(text("DELETE FROM ledger_entries WHERE seq = 2"))
    assert verify_main([], database_url) == 1
    assert "entry 2 is missing" in capsys.readouterr().out
    assert verify_main(["--bogus"], database_url) == 2


def _rewrite_chain_from(engine: Engine, seq: int) -> None:
    """What someone with write access could do: recompute every hash from `seq` on."""
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT * FROM ledger_entries ORDER BY seq")).mappings().all()
        prev = rows[seq - 2]["hash"] if seq > 1 else "0" * 64
        for row in rows[seq - 1:]:
            at = row["at"] if isinstance(row["at"], datetime) else datetime.fromisoformat(row["at"])
            digest = chain_hash(row["seq"], at.replace(tzinfo=at.tzinfo or UTC), row["actor"], row["team"],
                                row["channel"], row["action"], row["provider"], row["target"], row["outcome"],
                                row["detail"], row["request_id"], prev)
            conn.execute(text("UPDATE ledger_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                         {"p": prev, "h": digest, "s": row["seq"]})
            prev = digest


def test_an_anchor_kept_elsewhere_catches_what_the_chain_alone_cannot(
        capsys: pytest.CaptureFixture[str], database_url: str, engine: Engine, filled: list[LedgerEntry]) -> None:
    assert verify_main([], database_url) == 0
    anchor = capsys.readouterr().out.strip().rsplit("newest ", 1)[1]
    assert anchor == f"4:{filled[-1].hash}"
    assert verify_main(["--anchor", anchor], database_url) == 0
    assert capsys.readouterr().out.endswith("; reaches the anchor 4\n")

    # an entry is edited and the chain recomputed from it: intact on its own, not against the anchor
    with engine.begin() as conn:
        conn.execute(text("UPDATE ledger_entries SET actor = 'U9' WHERE seq = 2"))
    _rewrite_chain_from(engine, 2)
    assert verify_main([], database_url) == 0
    capsys.readouterr()
    assert verify_main(["--anchor", anchor], database_url) == 1
    assert "entry 4 is not the entry anchored earlier" in capsys.readouterr().out

    # the newest entries removed: the chain is intact, the anchor is out of reach
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_entries WHERE seq >= 3"))
    assert verify_main([], database_url) == 0
    capsys.readouterr()
    assert verify_main(["--anchor", anchor], database_url) == 1
    assert "ledger now ends at entry 2: its newest entries were removed" in capsys.readouterr().out

    for bad in ("4", "x:abc", f"0:{filled[-1].hash}", "4:XYZ"):
        assert verify_main(["--anchor", bad], database_url) == 2
        assert "--anchor wants SEQ:HASH" in capsys.readouterr().err


def _fresh_urls(tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    url: str = request.getfixturevalue("fresh_pg_url")
    return url


def test_a_missing_sqlite_file_is_reported_with_its_path_and_not_created(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default DATABASE_URL is relative: an auditor in the wrong directory must not get an all-clear.
    monkeypatch.chdir(tmp_path)
    url = "sqlite:///./smsops.db"
    assert verify_main([], url) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"verify-ledger: no ledger at {tmp_path / 'smsops.db'}: the file does not exist. Run this where"
                   " the bot keeps its database, or set DATABASE_URL to it (e.g. DATABASE_URL=sqlite:////data/smsops.db).\n")
    code, out, err = run_audit(capsys, url, "--json")
    assert code == 3 and out == "" and f"audit: no ledger at {tmp_path / 'smsops.db'}" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_database_without_the_schema_is_reported_and_not_migrated(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, request: pytest.FixtureRequest, kind: str) -> None:
    url = _fresh_urls(tmp_path, request, kind)
    if kind == "sqlite":
        (tmp_path / "fresh.db").touch()  # exists, but holds no ledger
    assert verify_main([], url) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "verify-ledger: no ledger in " in err and "the database has no smsops tables" in err
    assert run_audit(capsys, url, "--json")[0] == 3
    assert current_revision(url) is None
    engine = make_engine(url)
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_an_older_schema_is_reported_not_migrated(capsys: pytest.CaptureFixture[str], database_url: str,
                                                  engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    try:
        assert verify_main([], database_url) == 3
        err = capsys.readouterr().err
        assert f"has schema revision 0000, this smsops expects {head_revision()}: run `smsops migrate` first" in err
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0000"
    finally:  # the PostgreSQL database is the session's: leave it as found
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()})


def test_the_read_only_commands_cannot_write(database_url: str, filled: list[LedgerEntry]) -> None:
    engine = open_read_only(database_url)
    try:
        with pytest.raises(DBAPIError, match=r"read-only|readonly"), engine.begin() as conn:
            conn.execute(text("DELETE FROM ledger_entries"))
    finally:
        engine.dispose()
    assert verify_main([], database_url) == 0


def test_an_unreachable_database_is_reported_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://smsops:hunter2@127.0.0.1:1/ledger"  # nothing listens on port 1
    assert audit_main(["--json"], url) == 3
    err = capsys.readouterr().err
    assert err.startswith("audit: cannot open the database in DATABASE_URL"
                          " (postgresql+psycopg://smsops:***@127.0.0.1:1/ledger): ")
    assert "hunter2" not in err and err.count("\n") == 1
    assert verify_main([], url) == 3
    assert "verify-ledger: cannot open the database in DATABASE_URL" in capsys.readouterr().err

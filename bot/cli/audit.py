"""`python -m bot audit` and `python -m bot verify-ledger`: the ledger from a shell.

Both only read: they open the database read-only, never create or migrate it, and fail with the place
they looked when there is no ledger there (exit 3). `audit` streams:
an export of millions of entries runs in constant memory and starts printing at once.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, time
from typing import TextIO

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bot.domain.durations import parse_duration
from db import audit
from db.engine import DatabaseSettingError, open_read_only
from db.ledger import verify
from db.migrate import require_current_schema
from db.models import LedgerEntry

PROVIDER_ALIASES = {"coolsms": "solapi"}
KNOWN_PROVIDERS = ("solapi", "highlevel", "telnyx")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# Table columns: (key, width); the last one takes the rest of the line.
_TABLE = (("at", 20), ("actor", 12), ("action", 18), ("provider", 9), ("target", 38), ("outcome", 8),
          ("channel", 12), ("detail", 0))


EXIT_DATABASE = 3


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


class UsageError(ValueError):
    """A bad command-line value: reported on stderr with exit code 2."""


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """`--since`/`--until` values: ISO-8601 with an offset (`2026-11-24T09:00+09:00`, `...Z`), a date
    (`2026-11-01`, midnight UTC) or a duration ago (`7d`, `12h`, `30m`, `90s`)."""
    value = text.strip()
    if value.lower().endswith(" ago"):
        value = value[:-4].strip()
    if not value:
        raise UsageError("an empty time was given")
    if _DATE.match(value):
        try:
            return datetime.combine(datetime.fromisoformat(value).date(), time(0), tzinfo=UTC)
        except ValueError as exc:
            raise UsageError(f"{text!r} is not a valid date: {exc}") from None
    if value[0].isdigit() and value[-1].lower() in "smhd" and "-" not in value and ":" not in value:
        try:
            delta = parse_duration(value)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return (now or datetime.now(UTC)) - delta
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise UsageError(
            f"{text!r} is not a time: use ISO-8601 with an offset (2026-11-24T09:00+09:00 or ...Z),"
            " a date (2026-11-01) or a duration ago (7d, 12h, 30m)"
        ) from None
    if parsed.tzinfo is None:
        raise UsageError(f"{text!r} has no UTC offset: add Z or one such as +09:00")
    return parsed.astimezone(UTC)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _audit_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bot audit", description="Print the audit trail (the ledger).")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="one JSON object a line")
    fmt.add_argument("--csv", action="store_true", help="CSV with a header row")
    parser.add_argument("--target", metavar="ID", help="one message's or group's history (oldest first);"
                        " may be prefixed telnyx:, solapi:, highlevel:")
    parser.add_argument("--actor", metavar="UID", help="a Slack user id, @name (as the bot last saw it), or 'system'")
    parser.add_argument("--provider", metavar="NAME", help="solapi (coolsms), highlevel or telnyx")
    parser.add_argument("--since", metavar="WHEN", help="ISO-8601 with an offset, a date, or 7d/12h/30m ago")
    parser.add_argument("--until", metavar="WHEN", help="like --since; entries before this time")
    parser.add_argument("--limit", metavar="N", type=_positive_int, help="at most N entries (the newest)")
    return parser


def _build_filter(args: argparse.Namespace, now: datetime | None = None) -> audit.AuditFilter:
    provider = args.provider.strip().lower() if args.provider is not None else None
    if provider is not None:
        provider = PROVIDER_ALIASES.get(provider, provider)
    target = args.target
    if target is not None:
        prefix, sep, rest = target.partition(":")
        key = PROVIDER_ALIASES.get(prefix.lower(), prefix.lower())
        if sep and rest and key in KNOWN_PROVIDERS:
            if provider is not None and provider != key:
                raise UsageError(f"--target says {key} but --provider says {provider}")
            provider, target = key, rest
    since = parse_when(args.since, now) if args.since is not None else None
    until = parse_when(args.until, now) if args.until is not None else None
    return audit.AuditFilter(target=target, actor=args.actor, provider=provider, since=since,
                             until=until, limit=args.limit)


def _write_json(entries: Iterable[LedgerEntry], out: TextIO) -> None:
    for entry in entries:
        out.write(json.dumps(entry.contract_dict(), ensure_ascii=False) + "\n")


def _write_csv(entries: Iterable[LedgerEntry], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LedgerEntry.CONTRACT_KEYS)
    for entry in entries:
        row = entry.contract_dict()
        writer.writerow(["" if row[key] is None else row[key] for key in LedgerEntry.CONTRACT_KEYS])


def _cell(value: str | None, width: int) -> str:
    text = "-" if value in (None, "") else " ".join(str(value).split())  # one line per entry
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text.ljust(width) if width else text


def _write_table(entries: Iterable[LedgerEntry], out: TextIO, names: dict[str, str] | None = None) -> None:
    names = names or {}
    out.write("  ".join(_cell(key, width) for key, width in _TABLE).rstrip() + "\n")
    count = 0
    for entry in entries:
        row = entry.contract_dict()
        row["at"] = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        row["action"] = audit.action_words(entry.action)  # words for people; --json/--csv keep the ids
        row["actor"] = f"@{names[entry.actor]}" if entry.actor in names else entry.actor
        out.write("  ".join(_cell(row[key], width) for key, width in _TABLE).rstrip() + "\n")
        count += 1
    out.write(f"({count} {'entry' if count == 1 else 'entries'})\n")


def audit_main(argv: list[str], database_url: str) -> int:
    """`python -m bot audit [--json|--csv] [--target ID] [--actor UID] [--provider NAME]
    [--since WHEN] [--until WHEN] [--limit N]`. Returns the exit code: 0, 2 for bad arguments,
    3 when the database fails."""
    try:
        args = _audit_parser().parse_args(argv)
        flt = _build_filter(args)
    except UsageError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        print("usage: python -m bot audit [--json|--csv] [--target ID] [--actor UID] [--provider NAME]"
              " [--since WHEN] [--until WHEN] [--limit N]", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    write: Callable[[Iterable[LedgerEntry], TextIO], None]
    write = _write_json if args.json else _write_csv if args.csv else _write_table
    try:
        engine = _open_ledger(database_url)
        try:
            code = _print_audit(engine, flt, write, sys.stdout)
            sys.stdout.flush()
        finally:
            engine.dispose()
    except BrokenPipeError:
        # `audit | head`: the reader has gone; that is not an error. Keep Python from complaining
        # again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except DatabaseSettingError as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except SQLAlchemyError as exc:
        print(f"audit: the database failed: {_first_line(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    return code


def _print_audit(engine: Engine, flt: audit.AuditFilter, write: Callable[[Iterable[LedgerEntry], TextIO], None],
                 out: TextIO) -> int:
    """`--actor @bob` becomes bob's id (from the names the bot kept); the table shows `@name`s."""
    if flt.actor is not None and flt.actor.startswith("@"):
        ids = audit.ids_named(engine, flt.actor)
        if len(ids) != 1:
            problem = (f"nobody called {flt.actor} has used the bot (the names are those Slack gave it)"
                       if not ids else f"{flt.actor} is more than one user ({', '.join(ids)}): give the id")
            print(f"audit: --actor {problem}", file=sys.stderr)
            return 2
        flt = replace(flt, actor=ids[0])
    if write is _write_table:
        _write_table(audit.stream(engine, flt), out, audit.names(engine))
    else:
        write(audit.stream(engine, flt), out)
    return 0


def verify_main(argv: list[str], database_url: str) -> int:
    """`python -m bot verify-ledger [--anchor SEQ:HASH]`: 0 and `ledger intact: N entries`, with the
    newest entry's seq:hash to keep outside the database; or 1 and the first bad entry (2: bad
    arguments; 3: the database could not be read)."""
    parser = _Parser(prog="python -m bot verify-ledger",
                     description="Check that no ledger entry was edited, removed or inserted.")
    parser.add_argument("--anchor", metavar="SEQ:HASH",
                        help="an entry's seq:hash printed by an earlier run and kept elsewhere: the ledger must"
                             " still reach that entry unchanged (catches removed newest entries and a"
                             " recomputed chain)")
    try:
        args = parser.parse_args(argv)
        anchor = _anchor(args.anchor) if args.anchor else None
    except UsageError as exc:
        print(f"verify-ledger: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        engine = _open_ledger(database_url)
        try:
            result = verify(engine, anchor=anchor)
        finally:
            engine.dispose()
    except DatabaseSettingError as exc:
        print(f"verify-ledger: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except SQLAlchemyError as exc:
        print(f"verify-ledger: could not read the ledger: {_first_line(exc)}", file=sys.stderr)
        return EXIT_DATABASE
    if result.ok:
        line = f"ledger intact: {result.checked} entries"
        if result.checked:
            line += f"; newest {result.checked}:{result.head}"
        if anchor is not None:
            line += f"; reaches the anchor {anchor[0]}"
        print(line)
        return 0
    print(f"ledger BROKEN at entry {result.bad_seq}: {result.problem}"
          f" ({result.checked} entries before it are intact)")
    return 1


def _open_ledger(database_url: str) -> Engine:
    """The ledger, read-only, at this code's schema: an auditor never gets an all-clear from a database
    that was created (or migrated) by the check itself."""
    engine = open_read_only(database_url)
    try:
        require_current_schema(engine, database_url)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _anchor(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or int(seq) < 1 or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise UsageError(f"--anchor wants SEQ:HASH as verify-ledger printed it (e.g. 42:{'0' * 64}), not {text!r}")
    return int(seq), digest

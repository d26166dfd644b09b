"""Bulk cancel at the provider's rate limit: one `/sms cancel all mine` over 10,000 scheduled sends.

    .venv/bin/python bench/bulk_cancel_bench.py                             # HighLevel fake, 100 / 1 s
    .venv/bin/python bench/bulk_cancel_bench.py --limit 100 --window 10     # HighLevel's real burst limit (~17 min)
    .venv/bin/python bench/bulk_cancel_bench.py --provider telnyx --sends 3000 --limit 50 --window 1
    .venv/bin/python bench/bulk_cancel_bench.py --db postgresql

The fake enforces a fixed-window limit (`--limit` requests per `--window` seconds, 429 past it) and
says so in its headers (HighLevel: X-RateLimit-Max / -Remaining / -Interval-Milliseconds; Telnyx:
x-ratelimit-limit / -remaining / -reset). The bot (`python -m bot`, its own process) starts knowing
only its defaults (HighLevel 100 per 10 s, Telnyx nothing) and learns the rest from those headers.
The default limit is 100 per 1 s rather than HighLevel's 100 per 10 s so that 10,000 cancels take
under two minutes; the limiter does the same thing at either pace.

Reported: the rate the fake let through against the limit's rate (limit / the mean time between
request i and request i + limit, i.e. how soon each permit was used again: one window is 100 %), the
command's duration against the ideal (sends / rate), the most requests the fake saw in any window, 429s,
and correctness: cancels per id at the fake (none lost, none doubled), `cancelled` ledger entries per
id, the tracked sends' states, the summary, and the one progress message and its updates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    Bot,
    Connection,
    Fakes,
    cpu_seconds,
    load_sends,
    machine,
    migrate,
    pg_database,
    signed_click,
    signed_command,
    table,
    workdir,
)


def _max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _ledger(database_url: str) -> tuple[Counter[str], Counter[str]]:
    from sqlalchemy import text

    from db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            cancelled = Counter({str(t): int(n) for t, n in conn.execute(text(
                "SELECT target, COUNT(*) FROM ledger_entries WHERE action = 'cancelled' GROUP BY target"))})
            states = Counter({str(s): int(n) for s, n in conn.execute(text(
                "SELECT state, COUNT(*) FROM tracked_sends GROUP BY state"))})
    finally:
        engine.dispose()
    return cancelled, states


def _wait_for_sweep(database_url: str, expected: int, timeout: float = 120.0) -> float:
    """The bot plans a reminder for every upcoming send when it starts (bot/reminders/, in the
    background): let that finish, so the bulk cancel is measured on its own."""
    from sqlalchemy import text

    from db.engine import make_engine

    engine = make_engine(database_url)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            try:
                with engine.connect() as conn:
                    count = conn.execute(text("SELECT COUNT(*) FROM apscheduler_jobs")).scalar_one()
            except Exception:
                count = 0
            if count >= expected:
                break
            time.sleep(0.5)
    finally:
        engine.dispose()
    return time.monotonic() - started


def run(options: argparse.Namespace, database_url: str, tmp: Path) -> dict[str, Any]:
    migrate(database_url)
    spec = f"{options.limit}/{options.window:g}"
    args = (["--highlevel-messages", str(options.sends), "--highlevel-limit", spec]
            if options.provider == "highlevel" else
            ["--telnyx-messages", str(options.sends), "--telnyx-limit", spec, "--highlevel-limit", "none"])
    fakes = Fakes(*args)
    bot: Bot | None = None
    try:
        ids: list[str] = fakes.info[f"{options.provider}_ids"]
        load_sends(database_url, options.provider, ids)
        bot = Bot(tmp, database_url, fakes.info).start()
        swept = _wait_for_sweep(database_url, options.sends)
        print(f"  the bot planned the sends' reminders in {swept:.1f} s", flush=True)
        token = uuid.uuid4().hex
        body, headers = signed_command("cancel all mine", f"{fakes.info['slack_url']}/response/{token}")
        cpu_before = cpu_seconds(bot.pid)
        started = time.time()
        status, _data, ack = asyncio.run(Connection("127.0.0.1", bot.port).post("/slack/events", body, headers))
        # `cancel all mine` lists what it would cancel and asks; the person presses "Cancel these N"
        listing_deadline = time.monotonic() + 120
        while not [a for a in fakes.stats()["answers"] if a[0] == token and "This would cancel" in a[2]]:
            if time.monotonic() > listing_deadline:
                raise SystemExit("no listing came back for `cancel all mine`")
            time.sleep(0.2)
        listed = time.time()
        value = json.dumps({"s": None, "b": datetime.now(UTC).isoformat()}, separators=(",", ":"))
        body, headers = signed_click("sms_cancel_mine", value, f"{fakes.info['slack_url']}/response/{token}")
        status, _data, click_ack = asyncio.run(Connection("127.0.0.1", bot.port).post("/slack/events", body,
                                                                                       headers))
        print(f"  command acked in {ack * 1000:.0f} ms, listed in {listed - started:.1f} s, confirm acked in "
              f"{click_ack * 1000:.0f} ms ({status}); cancelling {options.sends:,} at "
              f"{options.limit} per {options.window:g} s…", flush=True)
        started = time.time()
        expected = options.sends / options.limit * options.window
        deadline = time.monotonic() + expected * 3 + 120
        final: tuple[str, float, str] | None = None
        while time.monotonic() < deadline:
            time.sleep(1.0)
            answers = [a for a in fakes.stats()["answers"] if a[0] == token and "Cancelled" in a[2]]
            if answers:
                final = answers[-1]
                break
        cpu = cpu_seconds(bot.pid) - cpu_before
        stats = fakes.stats()
    finally:
        if bot is not None:
            bot.stop()
        fakes.stop()
    cancelled, states = _ledger(database_url)
    return {"ids": ids, "stats": stats, "final": final, "started": started, "cpu": cpu, "ack": ack,
            "cancelled": cancelled, "states": states}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--provider", choices=["highlevel", "telnyx"], default="highlevel")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    options = parser.parse_args()
    print(f"machine: {machine()}", flush=True)

    with workdir() as tmp:
        if options.db == "sqlite":
            result = run(options, f"sqlite:///{tmp / 'bulk.db'}", tmp)
        else:
            with pg_database() as url:
                result = run(options, url, tmp)

    stats, ids, final = result["stats"], result["ids"], result["final"]
    prefix = options.provider
    at_fake: dict[str, int] = stats[f"{prefix}_cancels"]
    allowed = sorted(stats[f"{prefix}_allowed_at"])
    lost = sum(1 for i in ids if at_fake.get(i, 0) == 0)
    doubled = sum(1 for n in at_fake.values() if n > 1)
    ledger_lost = sum(1 for i in ids if result["cancelled"].get(i, 0) == 0)
    ledger_doubled = sum(1 for n in result["cancelled"].values() if n > 1)
    limit_rate = options.limit / options.window
    # Each permit's reuse: request i and request i + limit are at least a window apart; the mean of
    # those gaps is the pace the limit allows (a gap of exactly one window is 100 %).
    gaps = [allowed[i + options.limit] - allowed[i] for i in range(len(allowed) - options.limit)]
    steady = options.limit / (sum(gaps) / len(gaps)) if gaps else float("nan")
    elapsed = final[1] - result["started"] if final else float("nan")
    updates = [c for c in stats["slack_calls"] if c[0] == "chat.update"]
    posts = [c for c in stats["slack_calls"] if c[0] == "chat.postMessage"]
    summary = updates[-1][2] if updates else "(none)"

    print()
    print(table(["what", "value"], [
        ["provider (fake), limit", f"{options.provider}, {options.limit} / {options.window:g} s "
                                   f"= {limit_rate:,.1f} requests/s"],
        ["sends cancelled (summary)", (final[2].split("Cancelled ")[1].split(";")[0] if final else "no answer")],
        ["command → summary", f"{elapsed:,.1f} s (ideal {(options.sends / limit_rate):,.1f} s)"],
        ["rate let through (steady)", f"{steady:,.2f} requests/s = {100 * steady / limit_rate:.1f} % of the limit"],
        ["overall", f"{len(allowed):,} requests in {allowed[-1] - allowed[0]:,.1f} s" if allowed else "-"],
        ["most in any window", f"{_max_in_window(allowed, options.window)} (limit {options.limit})"],
        ["429s from the fake", stats[f"{prefix}_refused"]],
        ["lost / doubled at the fake", f"{lost} / {doubled}"],
        ["lost / doubled in the ledger", f"{ledger_lost} / {ledger_doubled}"],
        ["tracked sends by state", ", ".join(f"{k} {v:,}" for k, v in sorted(result["states"].items()))],
        ["progress message", f"{len(posts)} posted, "
                             f"{len(updates)} updates"],
        ["its last text", summary.replace("\n", " ")[:120]],
        ["ack of the command", f"{result['ack'] * 1000:.0f} ms"],
        ["bot CPU", f"{result['cpu']:.1f} s ({result['cpu'] / elapsed:.2f} cores)" if final else "?"],
    ]))
    ok = final is not None and lost == doubled == ledger_lost == ledger_doubled == 0 and steady >= 0.95 * limit_rate
    print(f"\ntarget (≥ 95 % of the limit's rate, nothing lost or doubled): {'met' if ok else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

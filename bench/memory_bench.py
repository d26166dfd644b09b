"""Resident memory of the bot: idle, and with 100,000 tracked sends and their reminders.

    .venv/bin/python bench/memory_bench.py                       # 100,000 sends in batches of 10
    .venv/bin/python bench/memory_bench.py --sends 100000 --batch 1   # one reminder per send (slower start)

The bot is `python -m bot` in HTTP mode (uvicorn, Bolt, the providers, the reminders scheduler) on a
SQLite file, pointed at the fakes. Measured from outside, in /proc/<pid>/status: VmRSS (resident now)
and VmHWM (the peak so far).

1. idle: after start-up, and again after 50 commands (help, list, status, 20 cancels) have imported
   and warmed every path, then left alone for a few seconds;
2. loaded: the database holds `--sends` upcoming tracked sends (`--batch` per /sms schedule batch);
   the bot is started on it, plans the reminders it finds missing (one job per batch and lead, in
   APScheduler's SQLAlchemy job store), and is measured once that is done and again after commands.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    Bot,
    Connection,
    Fakes,
    load_sends,
    machine,
    migrate,
    rss_mb,
    signed_command,
    table,
    workdir,
)

TARGET_IDLE_MB = 150


def _commands(bot: Bot, slack_url: str, texts: list[str]) -> None:
    async def go() -> None:
        conn = Connection("127.0.0.1", bot.port)
        for text in texts:
            body, headers = signed_command(text, f"{slack_url}/response/{uuid.uuid4().hex}")
            await conn.post("/slack/events", body, headers)
        await conn.close()

    asyncio.run(go())


def _jobs(database_url: str) -> int:
    from sqlalchemy import text

    from db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT COUNT(*) FROM apscheduler_jobs")).scalar_one())
    except Exception:
        return 0
    finally:
        engine.dispose()


def _settle(bot: Bot, seconds: float) -> tuple[float, float]:
    time.sleep(seconds)
    return rss_mb(bot.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=10, help="sends per batch (one reminder per batch)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds left alone before measuring")
    options = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    rows = []
    with workdir() as tmp:
        fakes = Fakes("--telnyx-messages", "30", "--highlevel-limit", "none")
        try:
            slack_url = fakes.info["slack_url"]
            ids = fakes.info["telnyx_ids"]
            warm = (["help", "providers", "list", "list all"] * 5 + [f"status {i}" for i in ids[:10]]
                    + [f"cancel {i}" for i in ids[10:30]])

            # 1. idle
            idle_url = f"sqlite:///{tmp / 'idle.db'}"
            migrate(idle_url)
            load_sends(idle_url, "telnyx", ids)
            bot = Bot(tmp, idle_url, fakes.info).start()
            try:
                rss, peak = _settle(bot, options.settle)
                rows.append(["idle, just started", f"{rss:.1f}", f"{peak:.1f}"])
                _commands(bot, slack_url, warm)
                rss, peak = _settle(bot, options.settle)
                rows.append(["idle, after 50 commands", f"{rss:.1f}", f"{peak:.1f}"])
            finally:
                bot.stop()
            idle_rss = rss

            # 2. loaded
            big_url = f"sqlite:///{tmp / 'big.db'}"
            migrate(big_url)
            started = time.monotonic()
            load_sends(big_url, "telnyx", [str(uuid.uuid4()) for _ in range(options.sends)],
                       batch_size=options.batch)
            print(f"  {options.sends:,} tracked sends loaded in {time.monotonic() - started:.1f} s", flush=True)
            batches = -(-options.sends // options.batch)
            bot = Bot(tmp, big_url, fakes.info).start()
            try:
                started = time.monotonic()
                while _jobs(big_url) < batches and time.monotonic() - started < 600:
                    time.sleep(1.0)
                planned = _jobs(big_url)
                print(f"  the bot planned {planned:,} reminders in {time.monotonic() - started:.1f} s", flush=True)
                rss, peak = _settle(bot, options.settle)
                rows.append([f"{options.sends:,} sends, {planned:,} reminder jobs, planned", f"{rss:.1f}",
                             f"{peak:.1f}"])
                _commands(bot, slack_url, ["list", "list all", "help"] * 10)
                rss, peak = _settle(bot, options.settle)
                rows.append([f"{options.sends:,} sends, after 30 commands", f"{rss:.1f}", f"{peak:.1f}"])
            finally:
                bot.stop()
        finally:
            fakes.stop()

    print()
    print(table(["state", "RSS MiB", "peak RSS MiB"], rows))
    print(f"\ntarget: idle under {TARGET_IDLE_MB} MB: {'met' if idle_rss < TARGET_IDLE_MB else 'MISSED'}"
          f" ({idle_rss:.1f} MiB after warm-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

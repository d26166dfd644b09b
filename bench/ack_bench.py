"""Ack latency: the bot's answer to a signed `/sms cancel <id>` against a bare slack-bolt app's.

    .venv/bin/python bench/ack_bench.py                        # 1, 10, 50 clients sharing 20 requests/s, ~2 min
    .venv/bin/python bench/ack_bench.py --think 0.5            # each client: a request every ~0.5 s (overloads at 50)
    .venv/bin/python bench/ack_bench.py --clients 1 10 50 100 --seconds 30 --rate 40
    .venv/bin/python bench/ack_bench.py --db both --workers 2     # both databases; 2 `smsops worker` processes
    .venv/bin/python bench/ack_bench.py --clients 50 --latency 0 --rate 60 120 240   # 1×, 2×, 4× a rate

What runs, each in its own process: the bot (`python -m bot`: uvicorn, Bolt, SQLite, reminders, the
whole runtime), a bare slack-bolt app that only acks (Starlette + AsyncSlackRequestHandler on the same
uvicorn, same settings), the fakes (Slack and a Telnyx whose every call takes `--latency` seconds,
2 s by default), and this load generator.

Each of `--clients` clients is a closed loop on its own keep-alive connection: send a freshly signed
`/sms cancel <id>` (every id a real scheduled Telnyx message the bot tracks, so each request starts a
real cancel that waits 2 s on the provider), read the HTTP answer, wait a think time (±50 %), again,
for `--seconds` per phase. By default the clients share `--rate` requests per second (20: each of N
clients thinks N / 20 s), so every level offers the same load and only the concurrency changes; 20/s
is below what the bot can finish with a 2 s provider (its 50 provider connections / 2 s = 25/s) and
below its CPU capacity (bench/throughput_bench.py). `--think S` fixes each client's pause instead, so
the load grows with the clients. Latency is measured here, from the first byte sent
to the last byte of the answer. For each number of clients the bot and the bare app run back to back
(which goes first alternates), and the next phase waits until the bot has answered every earlier
cancel through response_url, so neither sees the other's work. `--think 0` runs every client flat out:
that measures how many requests per second each can ack (CPU-bound), not the latency of an ack.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _support import (
    PYTHON,
    Bot,
    Connection,
    Fakes,
    Phase,
    free_port,
    load_sends,
    machine,
    migrate,
    percentile,
    pg_database,
    pg_version,
    signed_command,
    table,
    wait_http,
    workdir,
)

SLACK_LIMIT = 3.0


async def run_phase(port: int, make_body: Callable[[], tuple[bytes, dict[str, str]]], clients: int,
                    seconds: float, think: float, expect: bytes) -> Phase:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors
        conn = Connection("127.0.0.1", port)
        await asyncio.sleep(random.uniform(0, max(think, 0.01)))  # do not start in lock step
        try:
            while time.perf_counter() < deadline:
                body, headers = make_body()
                try:
                    status, data, took = await conn.post("/slack/events", body, headers)
                except (OSError, asyncio.IncompleteReadError):
                    errors += 1
                    await conn.close()
                    continue
                latencies.append(took)
                if status != 200 or expect not in data:
                    errors += 1
                if think:
                    await asyncio.sleep(think * random.uniform(0.5, 1.5))
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return Phase(latencies, errors, time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase (default 15)")
    parser.add_argument("--rate", type=float, nargs="+", default=[20.0],
                        help="requests/s shared by the clients (default 20); several: a phase pair for each")
    parser.add_argument("--think", type=float, default=None, help="fixed seconds between a client's requests")
    parser.add_argument("--latency", type=float, default=2.0, help="the fake provider's seconds per call")
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--workers", type=int, default=0,
                        help="`smsops worker` processes beside the bot's HTTP process (which then only acks)")
    options = parser.parse_args()
    print(f"machine: {machine()}" + (f"; {pg_version()}" if options.db != "sqlite" else ""))
    rows: list[list[Any]] = []
    ratios: list[list[Any]] = []
    with workdir() as tmp:
        if options.db in ("sqlite", "both"):
            one_db("SQLite", f"sqlite:///{tmp / 'ack.db'}", options, tmp, rows, ratios)
        if options.db in ("postgresql", "both"):
            with pg_database() as url:
                one_db("PostgreSQL", url, options, tmp, rows, ratios)
    print()
    print(table(["database", "offered/s", "clients", "app", "requests", "req/s", "p50 ms", "p99 ms", "max ms",
                 "≥1 s", "errors"], rows))
    print()
    print(table(["database", "offered/s", "clients", "bot/bare p50", "bot/bare p99", "p99 within 1.25×",
                 "all < 1.5 s", "bot max < 1 s"], ratios))
    return 0


def one_db(db: str, db_url: str, options: argparse.Namespace, tmp: Path, rows: list[list[Any]],
           ratios: list[list[Any]]) -> None:
    levels = [(rate, clients) for rate in options.rate for clients in options.clients]

    def think_for(rate: float, clients: int) -> float:
        return float(options.think) if options.think is not None else clients / rate

    # enough real ids for every request the bot could get
    needed = int(sum(min(c / max(think_for(r, c) * 0.5, 0.002), 1000) for r, c in levels) * options.seconds) \
        + options.warmup + 100
    pace = (f"think {options.think:g} s" if options.think is not None
            else f"sharing {'/'.join(f'{r:g}' for r in options.rate)} requests/s (think = clients / rate)")
    print(f"{db}: {options.clients} clients, {options.seconds:g} s per phase, {pace}, "
          f"provider latency {options.latency:g} s, {options.workers} worker process(es); "
          f"preparing {needed:,} scheduled Telnyx sends…", flush=True)
    migrate(db_url)
    fakes = Fakes("--telnyx-latency", str(options.latency), "--telnyx-messages", str(needed),
                  "--highlevel-limit", "none")
    bot: Bot | None = None
    bare = None
    bare_log = None
    try:
        ids: Iterator[str] = iter(fakes.info["telnyx_ids"])
        load_sends(db_url, "telnyx", fakes.info["telnyx_ids"])
        slack_url = fakes.info["slack_url"]
        bot = Bot(tmp, db_url, fakes.info, workers=options.workers).start()
        bare_port = free_port()
        import subprocess

        bare_log = open(tmp / f"bare-{db}.log", "wb")
        bare = subprocess.Popen([PYTHON, str(Path(__file__).resolve().parent / "_support.py"), "bare",
                                 "--port", str(bare_port), "--slack-api", fakes.info["slack_api"]],
                                stdout=bare_log, stderr=subprocess.STDOUT)
        wait_http(f"http://127.0.0.1:{bare_port}/healthz", proc=bare)

        def bot_body() -> tuple[bytes, dict[str, str]]:
            return signed_command(f"cancel {next(ids)}", f"{slack_url}/response/{uuid.uuid4().hex}")

        def bare_body() -> tuple[bytes, dict[str, str]]:
            return signed_command(f"cancel {uuid.uuid4()}", f"{slack_url}/response/{uuid.uuid4().hex}")

        sent_to_bot = 0

        def drain(timeout: float = 120.0) -> float:
            started = time.monotonic()
            while fakes.ask("count")["answers"] < sent_to_bot and time.monotonic() - started < timeout:
                time.sleep(0.2)
            return time.monotonic() - started

        asyncio.run(_warm(bot.port, bot_body, options.warmup))
        sent_to_bot += options.warmup
        asyncio.run(_warm(bare_port, bare_body, options.warmup))
        drain()
        print(f"  {db}: the bot was idle after {bot.wait_idle():.1f} s of start-up work", flush=True)

        for n, (rate, clients) in enumerate(levels):
            order = [("bot", bot.port, bot_body, b"Cancelling"), ("bare", bare_port, bare_body, b"Working")]
            if n % 2:
                order.reverse()
            results: dict[str, Phase] = {}
            for name, port, make, expect in order:
                phase = asyncio.run(run_phase(port, make, clients, options.seconds, think_for(rate, clients),
                                              expect))
                results[name] = phase
                if name == "bot":
                    sent_to_bot += len(phase.latencies)
                    waited = drain()
                    print(f"  {db}, {rate:g}/s, {clients} clients, bot: {len(phase.latencies):,} requests; "
                          f"its cancels finished {waited:.1f} s after the phase", flush=True)
                else:
                    print(f"  {db}, {rate:g}/s, {clients} clients, bare: {len(phase.latencies):,} requests",
                          flush=True)
            for name in ("bot", "bare"):
                ph = results[name]
                ms = [x * 1000 for x in ph.latencies]
                rows.append([db, f"{rate:g}", clients, name, f"{len(ms):,}", f"{len(ms) / ph.seconds:,.0f}",
                             f"{percentile(ms, 50):.1f}", f"{percentile(ms, 99):.1f}", f"{max(ms):.0f}",
                             sum(1 for x in ms if x >= 1000), ph.errors])
            b, r = results["bot"].latencies, results["bare"].latencies
            ratios.append([db, f"{rate:g}", clients, f"{percentile(b, 50) / percentile(r, 50):.2f}",
                           f"{percentile(b, 99) / percentile(r, 99):.2f}",
                           "yes" if percentile(b, 99) <= 1.25 * percentile(r, 99) else "no",
                           "yes" if max(b) < SLACK_LIMIT / 2 else "NO",
                           "yes" if max(b) < 1.0 else "NO"])
    finally:
        if bot is not None:
            bot.stop()
        if bare is not None:
            bare.terminate()
            bare.wait(10)
        if bare_log is not None:
            bare_log.close()
        fakes.stop()


async def _warm(port: int, make: Callable[[], tuple[bytes, dict[str, str]]], count: int) -> None:
    conn = Connection("127.0.0.1", port)
    for _ in itertools.repeat(None, count):
        body, headers = make()
        await conn.post("/slack/events", body, headers)
    await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())

"""What the benchmarks share (not a benchmark itself: bench/run_all.py runs only `*_bench.py`).

- Processes: the bot runs as `python -m bot` (its real entry point: uvicorn, the whole runtime), the
  fakes run in their own process (`python bench/_support.py fakes …`), and the load generator runs in
  the benchmark's process, so none of them steals the others' interpreter lock.
- A small HTTP/1.1 keep-alive client on asyncio streams: cheap enough per request that the load
  generator measures the server, not itself.
- Signed Slack slash-command bodies, a sent-sends loader, the machine's description, tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIGNING_SECRET = "bench-signing-secret-7d1e"
BOT_TOKEN = "xoxb-test-token"  # what bot/sandbox/slack.py accepts
TEAM_ID = "T0TEST001"
CHANNEL = "C0BENCH01"
USER = "U0BENCH01"
PG_ADMIN_URL = os.environ.get("SMSOPS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PYTHON = sys.executable


# --- the machine ------------------------------------------------------------------------------------
def machine() -> str:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    return (f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


def pg_version() -> str:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return f"PostgreSQL {row[0] if row else '?'}"
    except Exception as error:
        return f"PostgreSQL unavailable ({type(error).__name__})"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one run, dropped after it."""
    import psycopg

    name = f"smsops_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- numbers and tables -----------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# --- Slack requests ---------------------------------------------------------------------------------
def signed_command(text: str, response_url: str, user: str = USER, channel: str = CHANNEL,
                   timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    from slack_sdk.signature import SignatureVerifier

    form = {
        "token": "legacy-verification-token", "team_id": TEAM_ID, "team_domain": "bench",
        "channel_id": channel, "channel_name": "bench", "user_id": user, "user_name": user.lower(),
        "command": "/sms", "text": text, "api_app_id": "A0SMSOPS1", "is_enterprise_install": "false",
        "response_url": response_url, "trigger_id": f"{secrets.randbelow(10**9)}.1.x",
    }
    body = urlencode(form)
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = str(SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body))
    return body.encode(), {"content-type": "application/x-www-form-urlencoded",
                           "x-slack-request-timestamp": ts, "x-slack-signature": signature}


def signed_click(action_id: str, value: str, response_url: str, user: str = USER, channel: str = CHANNEL,
                 timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A button click (`block_actions`) as Slack sends it, signed."""
    from slack_sdk.signature import SignatureVerifier

    payload = {
        "type": "block_actions", "team": {"id": TEAM_ID, "domain": "bench"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID}, "api_app_id": "A0SMSOPS1",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": channel, "is_ephemeral": True},
        "trigger_id": f"{secrets.randbelow(10**9)}.1.x", "channel": {"id": channel, "name": "bench"},
        "message": {"type": "message", "ts": "1.000001", "text": ""}, "response_url": response_url,
        "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                     "action_ts": f"{time.time():.6f}"}],
    }
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = str(SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body))
    return body.encode(), {"content-type": "application/x-www-form-urlencoded",
                           "x-slack-request-timestamp": ts, "x-slack-signature": signature}


class Connection:
    """One keep-alive HTTP/1.1 connection; `post` returns (status, body, seconds)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
        head = (f"POST {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\ncontent-length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        reader, writer = await self._open()
        started = time.perf_counter()
        writer.write(head + body)
        await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in fields:
            data = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            data = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = b""
        elapsed = time.perf_counter() - started
        if fields.get("connection", "").lower() == "close":
            await self.close()
        return status, data, elapsed

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None


# --- processes --------------------------------------------------------------------------------------
def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Bot:
    """`python -m bot` in HTTP mode on 127.0.0.1, with its settings from the environment."""

    def __init__(self, workdir: Path, database_url: str, fakes: dict[str, Any], *, workers: int = 0,
                 worker_tasks: int | None = None, worker_cores: float | None = None, **extra: str) -> None:
        """`workers`: that many `python -m bot worker` processes beside it on the same database; the HTTP
        process then only acks (INBOX_WORKERS=0 unless `extra` says otherwise). `worker_cores`: each worker
        process capped at that much CPU (CpuCap)."""
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TELNYX_", "SOLAPI_",
                                                                         "HIGHLEVEL_", "SMS_", "REMINDER_"))}
        env.update({
            "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fakes["slack_api"], "DATABASE_URL": database_url,
            "HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "INFO",
            "TELNYX_API_KEY": fakes["telnyx_key"], "TELNYX_BASE_URL": fakes["telnyx_url"],
            "TELNYX_FROM": "+18445550001",
            "HIGHLEVEL_TOKEN": fakes["highlevel_token"], "HIGHLEVEL_BASE_URL": fakes["highlevel_url"],
            "HIGHLEVEL_LOCATION_ID": fakes["highlevel_location"],
            "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT),
        })
        if workers:
            env["INBOX_WORKERS"] = "0"
        env.update(extra)
        self.log = open(workdir / f"bot-{self.port}.log", "wb")
        # cwd: a directory without a .env, so a developer's own settings do not leak in
        # SMSOPS_BENCH_BOT: a script to run instead of `-m bot` (a wrapper that adds probes, say)
        command = [PYTHON, os.environ["SMSOPS_BENCH_BOT"]] if os.environ.get("SMSOPS_BENCH_BOT") else [
            PYTHON, "-m", "bot"]
        self.proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        self.worker_env = {k: v for k, v in env.items() if k != "INBOX_WORKERS"}
        self.worker_command = [PYTHON, "-m", "bot", "worker"] + (
            ["--tasks", str(worker_tasks)] if worker_tasks else [])
        self.workdir = workdir
        self.worker_count = workers
        self.workers: list[tuple[subprocess.Popen[bytes], Any]] = []
        self.worker_cores = worker_cores
        self.caps: list[CpuCap] = []

    def start(self) -> Bot:
        try:
            wait_http(f"{self.url}/healthz", proc=self.proc)  # migrations ran: the workers need not race them
            for n in range(self.worker_count):
                log = open(self.workdir / f"worker-{self.port}-{n}.log", "wb")
                proc = subprocess.Popen(self.worker_command, cwd=self.workdir, env=self.worker_env, stdout=log,
                                        stderr=subprocess.STDOUT)
                self.workers.append((proc, log))
                if self.worker_cores:
                    cap = CpuCap(f"smsops-bench-{self.port}-{n}", self.worker_cores)
                    cap.add(proc.pid)
                    self.caps.append(cap)
            for proc, log in self.workers:
                _wait_log(Path(log.name), b'"worker started"', proc)
        except RuntimeError:
            self.stop()
            print(Path(self.log.name).read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        return self

    def wait_idle(self, below: float = 0.05, window: float = 1.0, timeout: float = 120.0) -> float:
        """Wait until the bot's processes together keep under `below` of a core busy for `window` seconds:
        start-up work (reminder plans for every loaded send, say) must not fall into the first measured
        phase. Returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            before = sum(cpu_seconds(pid) for pid in self.pids)
            time.sleep(window)
            if sum(cpu_seconds(pid) for pid in self.pids) - before < below * window:
                break
        return time.monotonic() - started

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def pids(self) -> list[int]:
        """The HTTP process and its worker processes: the bot's CPU is theirs together."""
        return [self.proc.pid, *(proc.pid for proc, _ in self.workers)]

    def stop(self) -> None:
        for proc in [self.proc, *(p for p, _ in self.workers)]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in [self.proc, *(p for p, _ in self.workers)]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.log.close()
        for _, log in self.workers:
            log.close()
        for cap in self.caps:
            cap.close()


def _wait_log(path: Path, needle: bytes, proc: subprocess.Popen[Any], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in path.read_bytes():
            return
        if proc.poll() is not None:
            tail = path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}:\n{tail}")
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not start within {timeout:g}s")


class Fakes:
    """The fake Slack and providers in a child process; `stats()` asks it what it saw."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([PYTHON, str(Path(__file__).resolve()), "fakes", *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fakes process did not start")
        self.info: dict[str, Any] = json.loads(line)

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.ask("stats")
        return result

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU time all cores have been busy so far (every process on the machine), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (its backends come and go: read them at each sample)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


class CpuCap:
    """At most `cores` of CPU for the processes put in it: a CFS quota in a cgroup of its own (the cpu
    controller, v1 or v2; needs root). It stands in for a machine with a core per worker process: on 2
    cores shared with PostgreSQL, the fakes and the load, a second uncapped worker finds no core free."""

    PERIOD_US = 100_000

    def __init__(self, name: str, cores: float) -> None:
        quota = int(cores * self.PERIOD_US)
        v1, v2 = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.dir = v1 / name
            self.dir.mkdir(exist_ok=True)
            (self.dir / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
            (self.dir / "cpu.cfs_quota_us").write_text(str(quota))
        elif "cpu" in (v2 / "cgroup.controllers").read_text(errors="replace").split():
            self.dir = v2 / name
            self.dir.mkdir(exist_ok=True)
            (self.dir / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
        else:
            raise SystemExit("--worker-cores needs the cgroup cpu controller (and root)")

    def add(self, pid: int) -> None:
        (self.dir / "cgroup.procs").write_text(str(pid))

    def close(self) -> None:
        for pid in (self.dir / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (self.dir.parent / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            self.dir.rmdir()


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            values[key] = int(value.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


# --- the tracked sends the bot will cancel ----------------------------------------------------------
def load_sends(database_url: str, provider: str, targets: Sequence[str], *, owner: str = USER,
               send_at: datetime | None = None, batch_size: int = 1,
               created_at: datetime | None = None) -> None:
    """Insert scheduled tracked sends in bulk (as `/sms schedule` leaves them, without notices)."""
    from db.engine import make_engine
    from db.models import TrackedSend

    now = datetime.now(UTC)
    when = send_at or now + timedelta(hours=2)
    rows = []
    batch = uuid.uuid4().hex
    for i, target in enumerate(targets):
        if i % batch_size == 0:
            batch = uuid.uuid4().hex
        rows.append({
            "id": uuid.uuid4().hex, "provider": provider, "target": target, "batch_id": batch,
            "state": "scheduled", "provider_status": "scheduled", "send_at": when, "recipient_count": 1,
            "recipients_preview": "+1866555****", "text_preview": "Doors open at 10", "created_by": owner,
            "team": TEAM_ID, "channel": CHANNEL, "notice_channel": None, "notice_ts": None,
            "created_at": created_at or now, "updated_at": now,
        })
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(TrackedSend.__table__.insert(), rows[start:start + 5000])  # type: ignore[attr-defined]
    finally:
        engine.dispose()


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="smsops-bench-") as path:
        yield Path(path)


def migrate(database_url: str) -> None:
    from db.migrate import upgrade

    upgrade(database_url, quiet=True)


@dataclass
class Phase:
    latencies: list[float]
    errors: int
    seconds: float


# --- the fakes process ------------------------------------------------------------------------------
def fakes_main(argv: list[str]) -> int:
    """Serve the fake Slack, Telnyx and HighLevel; print their addresses (and the ids made) as one
    JSON line; then answer `stats` / `quit` lines on stdin."""
    parser = argparse.ArgumentParser(prog="_support.py fakes")
    parser.add_argument("--telnyx-latency", type=float, default=0.0)
    parser.add_argument("--telnyx-messages", type=int, default=0)
    parser.add_argument("--telnyx-limit", type=str, default="")
    parser.add_argument("--highlevel-messages", type=int, default=0)
    parser.add_argument("--highlevel-limit", type=str, default="100/10")
    options = parser.parse_args(argv)

    from bot.sandbox.highlevel import FakeHighLevel
    from bot.sandbox.slack import FakeSlack
    from bot.sandbox.telnyx import FakeTelnyx

    def limit(text: str) -> tuple[int, float] | None:
        if not text or text == "none":
            return None
        n, _, w = text.partition("/")
        return int(n), float(w)

    lock = threading.Lock()
    answers: list[tuple[str, float, str]] = []  # (response_url token, when, text)

    class TimedSlack(FakeSlack):
        async def _response(self, request: Any) -> Any:
            token = request.path_params["token"]
            payload = json.loads(await request.body())
            said = str(payload.get("text", ""))
            if not said.startswith("⏳"):  # "queued, N ahead" or progress: not the answer
                with lock:
                    answers.append((token, time.time(), said[:200]))
            replayed: Any = _Replay(request, payload)  # the request, its body already read
            return await super()._response(replayed)

    def counting(base: type) -> type:
        """The fake, counting each successful cancel per id and the rate limiter's verdicts."""

        class Counting(base):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.cancels: dict[str, int] = {}
                self.allowed_at: list[float] = []
                self.refused = 0
                if self._limiter is not None:
                    hit = self._limiter.hit

                    def counted() -> tuple[bool, int, float]:
                        result = hit()
                        with lock:
                            if result[0]:
                                self.allowed_at.append(time.monotonic())
                            else:
                                self.refused += 1
                        return result

                    self._limiter.hit = counted

            def _handle(self, method: str, path: str, query: str, headers: Any, body: bytes) -> Any:
                status, payload = super()._handle(method, path, query, headers, body)
                ok = status == 200 and not (isinstance(payload, dict) and payload.get("status") not in (None, 200))
                if method == "DELETE" and ok:
                    parts = path.strip("/").split("/")
                    message_id = parts[parts.index("messages") + 1]
                    with lock:
                        self.cancels[message_id] = self.cancels.get(message_id, 0) + 1
                return status, payload

        return Counting

    slack = TimedSlack().start()
    telnyx = counting(FakeTelnyx)(rate_limit=limit(options.telnyx_limit)).start()
    highlevel = counting(FakeHighLevel)(rate_limit=limit(options.highlevel_limit)).start()
    if options.telnyx_latency:
        telnyx.server.faults.latency(options.telnyx_latency)
    far = datetime.now(UTC) + timedelta(hours=2)
    telnyx_ids = [telnyx.add_message(send_at=far) for _ in range(options.telnyx_messages)]
    highlevel_ids = [highlevel.add_message(scheduled_at=far) for _ in range(options.highlevel_messages)]
    print(json.dumps({
        "slack_api": slack.api_url, "slack_url": slack.server.url,
        "telnyx_url": telnyx.base_url, "telnyx_key": telnyx.api_key,
        "highlevel_url": highlevel.base_url, "highlevel_token": highlevel.token,
        "highlevel_location": highlevel.location_id,
        "telnyx_ids": telnyx_ids, "highlevel_ids": highlevel_ids,
    }), flush=True)

    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        if command == "stats":
            with lock:
                stats = {
                    "answers": list(answers),
                    "telnyx_requests": len(telnyx.server.requests),
                    "telnyx_deletes": len(telnyx.server.requests_to("DELETE")),
                    **{f"{name}_{key}": value for name, fake in (("telnyx", telnyx), ("highlevel", highlevel))
                       for key, value in (("cancels", dict(fake.cancels)), ("allowed_at", list(fake.allowed_at)),
                                          ("refused", fake.refused))},
                    "highlevel_requests": len(highlevel.server.requests),
                    "slack_calls": [(c.method, c.at, str(c.args.get("text", ""))[:300])
                                    for c in slack.calls],
                }
            print(json.dumps(stats), flush=True)
        elif command == "count":
            with lock:
                print(json.dumps({"answers": len(answers)}), flush=True)
        elif command == "clear":
            with lock:
                answers.clear()
            print("{}", flush=True)
    slack.stop()
    telnyx.stop()
    highlevel.stop()
    return 0


class _Replay:
    """A request whose body was already read, for FakeSlack's handler."""

    def __init__(self, request: Any, payload: Any) -> None:
        self.path_params = request.path_params
        self._raw = json.dumps(payload).encode()

    async def body(self) -> bytes:
        return self._raw


# --- the bare Bolt app (ack_bench) -----------------------------------------------------------------
def bare_main(argv: list[str]) -> int:
    """A slack-bolt app that only acks /sms, served like the bot: Starlette on uvicorn."""
    parser = argparse.ArgumentParser(prog="_support.py bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slack-api", required=True)
    options = parser.parse_args(argv)

    import uvicorn
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=options.slack_api),
                   signing_secret=SIGNING_SECRET, process_before_response=False)

    @app.command("/sms")
    async def sms(ack: Any) -> None:
        await ack(text="⏳ Working on it…", response_type="ephemeral")

    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    asgi = Starlette(routes=[Route("/slack/events", events, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])
    uvicorn.run(asgi, host="127.0.0.1", port=options.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    mode, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if mode == "fakes":
        raise SystemExit(fakes_main(rest))
    if mode == "bare":
        raise SystemExit(bare_main(rest))
    raise SystemExit("usage: _support.py fakes|bare …")

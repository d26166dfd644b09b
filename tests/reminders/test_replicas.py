"""Two bot processes (`python -m bot`, HTTP mode) on one PostgreSQL database post a reminder once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
from sqlalchemy import create_engine, text

from bot.sandbox.harness import BOT_TOKEN, SIGNING_SECRET, reply_text, sign
from bot.sandbox.server import free_port
from bot.sandbox.slack import TEAM_ID
from tests.reminders.test_end_to_end import ON_TIME, reminder_posts

ROOT = Path(__file__).resolve().parents[2]
LEAD = 305


def start_bot(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "bot"], cwd=ROOT, env={**env, "PORT": str(port)},
                            stdout=out, stderr=subprocess.STDOUT)


def wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"bot on {port} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"bot on {port} did not become healthy:\n{log.read_text()[-3000:]}")


def slash(port: int, slack, command: str) -> str:
    token = uuid.uuid4().hex
    body = urlencode({
        "token": "legacy", "team_id": TEAM_ID, "team_domain": "test", "channel_id": "C0OPS0001",
        "channel_name": "ops", "user_id": "U0ALICE01", "user_name": "alice", "command": "/sms",
        "text": command, "api_app_id": "A0SMSOPS1", "response_url": slack.response_url(token),
        "trigger_id": "1.1.x",
    })
    headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
    response = httpx.post(f"http://127.0.0.1:{port}/slack/events", content=body.encode(), headers=headers, timeout=10)
    assert response.status_code == 200
    return token


def test_two_bot_processes_on_postgresql_post_a_reminder_once(pg_url, slack, telnyx, tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TELNYX_", "SOLAPI_", "HIGHLEVEL_"))},
        "PYTHONPATH": str(ROOT), "DATABASE_URL": pg_url, "HOST": "127.0.0.1", "LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url,
        "TELNYX_API_KEY": telnyx.api_key, "TELNYX_BASE_URL": telnyx.base_url, "TELNYX_FROM": "+18445550001",
        "REMINDER_LEADS": f"{LEAD}s", "REMINDER_POLL_SECONDS": "0.5",
    }
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"bot{i}.log" for i in range(2)]
    procs = [start_bot(port, env, log) for port, log in zip(ports, logs)]  # both start (and migrate) at once
    try:
        for port, proc, log in zip(ports, procs, logs):
            wait_healthy(port, proc, log)

        token = slash(ports[0], slack, "schedule telnyx +18665550201 in 309s Two replicas, one reminder")
        reply = slack.wait_for(lambda: [r for r in slack.responses_to(token)
                                        if not str(r.get("text", "")).startswith("⏳")], timeout=10)
        assert "Scheduled" in reply_text(reply[-1])

        engine = create_engine(pg_url)
        with engine.connect() as conn:
            batch_id, send_at = conn.execute(text("SELECT batch_id, send_at FROM tracked_sends")).one()
        due = send_at.timestamp() - LEAD
        slack.wait_for(lambda: reminder_posts(slack), timeout=due - time.time() + 5)
        time.sleep(1.0)  # time for a second post, if there were to be one

        posts = reminder_posts(slack)
        assert len(posts) == 1, f"{len(posts)} reminder posts"
        assert posts[0].at - due <= ON_TIME
        with engine.connect() as conn:
            claims = conn.execute(text("SELECT send_id, lead_seconds, status FROM reminder_claims")).all()
            reminded = conn.execute(text("SELECT actor FROM ledger_entries WHERE action = 'reminded'")).all()
            jobs = conn.execute(text("SELECT count(*) FROM apscheduler_jobs")).scalar()
        engine.dispose()
        assert [tuple(c) for c in claims] == [(batch_id, LEAD, "posted")]
        assert [r[0] for r in reminded] == ["system"]
        assert jobs == 0
        # Which replicas ran the job (both usually do; the claim decides who posts):
        fired = [[json.loads(line)["outcome"] for line in log.read_text().splitlines()
                  if '"reminder fired"' in line and batch_id in line] for log in logs]
        assert sorted(o for outcomes in fired for o in outcomes if o == "posted") == ["posted"]
        print(json.dumps({"outcomes per replica": fired, "late_s": round(posts[0].at - due, 3)}))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_web_concurrency_serves_one_port_from_several_whole_bots(pg_url, slack, telnyx, tmp_path):
    """WEB_CONCURRENCY=2: one `python -m bot` runs two processes on PORT, each a whole bot (its own runtime:
    acks, inbox workers, reminders) on the shared database; every request is answered once."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TELNYX_", "SOLAPI_", "HIGHLEVEL_"))},
        "PYTHONPATH": str(ROOT), "DATABASE_URL": pg_url, "HOST": "127.0.0.1", "LOG_LEVEL": "INFO",
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.api_url,
        "TELNYX_API_KEY": telnyx.api_key, "TELNYX_BASE_URL": telnyx.base_url, "TELNYX_FROM": "+18445550001",
        "WEB_CONCURRENCY": "2",
    }
    port, log = free_port(), tmp_path / "bot.log"
    proc = start_bot(port, env, log)
    try:
        wait_healthy(port, proc, log, timeout=40)
        deadline = time.monotonic() + 20
        while (started := [json.loads(line) for line in log.read_text().splitlines() if '"bot started"' in line]) \
                and len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len({entry["pid"] for entry in started}) == 2, log.read_text()[-3000:]
        assert proc.pid not in {entry["pid"] for entry in started}  # the supervisor only supervises

        tokens = [slash(port, slack, f"schedule telnyx +1866555{300 + n:04d} in 2h process test {n}")
                  for n in range(6)]
        for token in tokens:
            reply = slack.wait_for(lambda t=token: [r for r in slack.responses_to(t)
                                                    if not str(r.get("text", "")).startswith("⏳")], timeout=15)
            assert "Scheduled" in reply_text(reply[-1]), reply
        time.sleep(0.5)  # time for a second answer, if there were to be one
        assert all(len([r for r in slack.responses_to(t) if "Scheduled" in reply_text(r)]) == 1 for t in tokens)
        assert len(telnyx.messages) == 6
        engine = create_engine(pg_url)
        with engine.connect() as conn:
            scheduled = conn.execute(text("SELECT count(*) FROM ledger_entries WHERE action = 'scheduled'")).scalar()
            states = conn.execute(text("SELECT state, count(*) FROM slack_inbox GROUP BY state")).all()
        engine.dispose()
        assert scheduled == 6
        assert [tuple(s) for s in states] == [("done", 6)]
        proc.terminate()  # the platform's stop: the supervisor stops its processes too
        proc.wait(timeout=15)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{entry['pid']}").exists() for entry in started) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [e["pid"] for e in started if Path(f"/proc/{e['pid']}").exists()], "processes left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""Socket Mode: `python -m bot` with SLACK_APP_TOKEN connects out, and /sms works over the socket."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bot.sandbox.harness import reply_text
from bot.sandbox.server import free_port
from bot.sandbox.slack import TEAM_ID

ROOT = Path(__file__).resolve().parents[2]


def _socket_env(slack, telnyx, database_url: str, port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.token, "SLACK_APP_TOKEN": slack.app_token, "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": database_url, "PORT": str(port), "HOST": "127.0.0.1",
        "TELNYX_API_KEY": telnyx.api_key, "TELNYX_BASE_URL": telnyx.base_url,
    }


def test_a_socket_mode_request_acked_by_a_bot_that_dies_is_settled_by_a_worker(slack, telnyx, tmp_path):
    """The socket's ack comes after the request is durable: a bot that only acks (INBOX_WORKERS=0) and is
    then killed loses nothing; `smsops worker` on the same database answers the user, once."""
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=1))
    url = f"sqlite:///{tmp_path / 'socket.db'}"
    env = {**_socket_env(slack, telnyx, url, free_port()), "INBOX_WORKERS": "0"}
    bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        slack.wait_for(lambda: slack.socket_connected or bot.poll() is not None, 30)
        assert bot.poll() is None, bot.stdout.read().decode() if bot.stdout else ""
        token = uuid.uuid4().hex
        envelope = slack.send_envelope("slash_commands", {
            "team_id": TEAM_ID, "channel_id": "C0OPS0001", "user_id": "U0ALICE01", "command": "/sms",
            "text": f"cancel {message_id}", "response_url": slack.response_url(token), "trigger_id": "1.2.y",
            "api_app_id": "A0SMSOPS1",
        })
        ack = slack.wait_for(lambda: slack.socket_acks.get(envelope), 10)
        assert "Cancelling" in ack["payload"]["text"]
    finally:
        bot.kill()
        bot.wait(10)
    assert telnyx.status_of(message_id) == "scheduled" and slack.responses_to(token) == []
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            queued = list(conn.execute(text("SELECT content_type, state FROM slack_inbox")))
    finally:
        engine.dispose()
    assert [tuple(row) for row in queued] == [("socket_mode", "queued")]

    worker = subprocess.Popen([sys.executable, "-m", "bot", "worker", "--tasks", "1"], cwd=tmp_path,
                              env={**env, "INBOX_WORKERS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        final = slack.wait_for(lambda: [r for r in slack.responses_to(token)
                                        if not str(r.get("text", "")).startswith("⏳")], 30)
        assert "Cancelled" in reply_text(final[-1]), final
        assert telnyx.status_of(message_id) == "cancelled"
        assert len(final) == 1
        # the worker yields the CPU to the processes that ack (WORKER_NICE, 10 by default)
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == min(os.getpriority(os.PRIO_PROCESS, 0) + 10, 19)
    finally:
        worker.terminate()
        worker.wait(10)


def test_socket_mode_serves_sms_commands_without_a_public_url(slack, telnyx, tmp_path):
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=1))
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'socket.db'}",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "TELNYX_API_KEY": telnyx.api_key,
        "TELNYX_BASE_URL": telnyx.base_url,
    }
    bot = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        slack.wait_for(lambda: slack.socket_connected or bot.poll() is not None, 30)
        assert bot.poll() is None, bot.stdout.read().decode() if bot.stdout else ""
        token = uuid.uuid4().hex
        envelope = slack.send_envelope("slash_commands", {
            "team_id": TEAM_ID, "channel_id": "C0OPS0001", "user_id": "U0ALICE01", "command": "/sms",
            "text": f"cancel {message_id}", "response_url": slack.response_url(token), "trigger_id": "1.2.x",
            "api_app_id": "A0SMSOPS1",
        })
        ack = slack.wait_for(lambda: slack.socket_acks.get(envelope), 10)
        assert "Cancelling" in ack["payload"]["text"]
        final = slack.wait_for(lambda: [r for r in slack.responses_to(token) if "✅" in r.get("text", "")], 10)
        assert "Cancelled" in reply_text(final[-1])
        assert telnyx.status_of(message_id) == "cancelled"
        # health and metrics are still served on PORT in Socket Mode
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["database"] == "ok"
    finally:
        bot.terminate()
        bot.wait(10)

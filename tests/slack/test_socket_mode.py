"""Socket Mode: `python -m bot` with SLACK_APP_TOKEN connects out, and /sms works over the socket."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bot.sandbox.harness import reply_text
from bot.sandbox.server import free_port
from bot.sandbox.slack import TEAM_ID

ROOT = Path(__file__).resolve().parents[2]


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

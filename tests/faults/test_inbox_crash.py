"""Crash safety of the inbox (bot/server/inbox.py): a request acked by a bot that then dies is picked up
by the next one and settled exactly once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bot.sandbox.harness import reply_text
from bot.sandbox.highlevel import FakeHighLevel
from bot.sandbox.slack import FakeSlack
from bot.sandbox.solapi import FakeSolapi
from bot.sandbox.telnyx import FakeTelnyx
from tests.faults.crash_support import ForkServer, RemoteBot, bot_env, new_token

pytestmark = pytest.mark.timeout(120)

USER, CHANNEL = "U0ALICE01", "C0OPS0001"
SCHEDULE = "schedule telnyx +15551230001 in 10m hello from the inbox"


@pytest.fixture
def fakes() -> Any:
    slack, telnyx, solapi, highlevel = FakeSlack().start(), FakeTelnyx().start(), FakeSolapi().start(), \
        FakeHighLevel(rate_limit=None).start()
    try:
        yield slack, telnyx, solapi, highlevel
    finally:
        for fake in (slack, telnyx, solapi, highlevel):
            fake.stop()


def _rows(url: str, sql: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def _settled_once(url: str, slack: FakeSlack, telnyx: FakeTelnyx, token: str) -> None:
    final = slack.wait_for(lambda: [r for r in slack.responses_to(token)
                                    if not str(r.get("text", "")).startswith("⏳")], timeout=20)
    assert "Scheduled with Telnyx" in reply_text(final[-1]), final
    assert len(telnyx.messages) == 1  # one provider call, not two
    assert len(_rows(url, "SELECT seq FROM ledger_entries WHERE action = 'scheduled'")) == 1
    assert _rows(url, "SELECT id FROM intents WHERE finished_at IS NULL") == []
    assert [r[0] for r in _rows(url, "SELECT state FROM slack_inbox")] == ["done"]


def test_a_kill_between_the_ack_and_any_worker_loses_nothing(tmp_path: Path, fakes: Any) -> None:
    slack, telnyx, solapi, highlevel = fakes
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    server = ForkServer(tmp_path)
    try:
        # a bot that only acks: the request stays queued when it dies
        acker = RemoteBot(server, bot_env(slack, url, telnyx, solapi, highlevel, INBOX_WORKERS="0"),
                          tmp_path / "acker.log", slack)
        acker.wait_ready()
        token = new_token()
        ack = acker.command(SCHEDULE, USER, CHANNEL, token)
        assert ack.status_code == 200 and "Scheduling with telnyx" in ack.json()["text"]
        acker.kill()
        assert not telnyx.messages and slack.responses_to(token) == []

        after = RemoteBot(server, bot_env(slack, url, telnyx, solapi, highlevel), tmp_path / "after.log", slack)
        after.wait_ready()
        try:
            _settled_once(url, slack, telnyx, token)
        finally:
            after.kill()
    finally:
        server.close()

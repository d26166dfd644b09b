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
from tests.faults.crash_support import ForkServer, Gate, RemoteBot, bot_env, new_token

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
    # the request record is closed after the answer (a crash in between is reported): wait for the settling
    slack.wait_for(lambda: [r[0] for r in _rows(url, "SELECT state FROM slack_inbox")] == ["done"], timeout=20)
    assert len(telnyx.messages) == 1  # one provider call, not two
    assert len(_rows(url, "SELECT seq FROM ledger_entries WHERE action = 'scheduled'")) == 1
    assert _rows(url, "SELECT id FROM intents WHERE finished_at IS NULL") == []


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



def _kill_at(gate: Gate, method: str, path: str, *, after: bool, tmp_path: Path, fakes: Any) -> tuple[str, str]:
    """Run SCHEDULE on a bot killed the moment `gate` holds its request; start the next bot on the same
    database. Returns the database URL and the request's response token."""
    slack, telnyx, solapi, highlevel = fakes
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    gate.arm(method, lambda p: p.endswith(path), after=after)
    server = ForkServer(tmp_path)
    try:
        # a short lease: the next bot takes the dead one's request over within a second
        first = RemoteBot(server, bot_env(slack, url, telnyx, solapi, highlevel, INBOX_LEASE="1s"),
                          tmp_path / "first.log", slack)
        first.wait_ready()
        token = new_token()
        ack = first.command(SCHEDULE, USER, CHANNEL, token)
        assert ack.status_code == 200 and "Scheduling with telnyx" in ack.json()["text"]
        assert gate.hit.wait(15), f"the worker never reached {path}"
        first.kill()
        gate.release()
        assert [tuple(r) for r in _rows(url, "SELECT state, attempts FROM slack_inbox")] == [("taken", 1)]
        after = RemoteBot(server, bot_env(slack, url, telnyx, solapi, highlevel), tmp_path / "after.log", slack)
        after.wait_ready()
        return url, token
    finally:
        server.close()


def test_a_kill_between_the_pick_up_and_the_provider_call_runs_the_request_once_more(
        tmp_path: Path, fakes: Any) -> None:
    """Held at the invoker's time-zone look-up (users.info, before any provider call): the first attempt left
    no trace, so the next bot runs it again, and it is scheduled once."""
    slack, telnyx, _solapi, _highlevel = fakes
    url, token = _kill_at(Gate(slack.server), "GET", "/users.info", after=False, tmp_path=tmp_path, fakes=fakes)
    _settled_once(url, slack, telnyx, token)
    assert [r[0] for r in _rows(url, "SELECT attempts FROM slack_inbox")] == [2]


def test_a_kill_after_the_provider_acted_is_not_repeated(tmp_path: Path, fakes: Any) -> None:
    """The provider scheduled the message but its answer was lost with the bot: the next bot must not
    schedule it again (reconciliation on start has already closed the call and told the channel)."""
    slack, telnyx, _solapi, _highlevel = fakes
    url, token = _kill_at(Gate(telnyx.server), "POST", "/messages/schedule", after=True, tmp_path=tmp_path,
                          fakes=fakes)
    slack.wait_for(lambda: [r[0] for r in _rows(url, "SELECT state FROM slack_inbox")] == ["done"], timeout=20)
    assert len(telnyx.messages) == 1  # one provider call, not two
    notices = [m.text for m in slack.channel_messages(CHANNEL) if "restart" in m.text]
    # the channel is told once of the call (it may have gone through) and once of the request
    assert len([n for n in notices if "check the provider's console" in n]) == 1, notices
    assert len([n for n in notices if "ask again for anything still wanted" in n]) == 1, notices
    assert _rows(url, "SELECT seq FROM ledger_entries WHERE action = 'scheduled'") == []
    assert _rows(url, "SELECT id FROM intents WHERE finished_at IS NULL") == []
    assert not [r for r in slack.responses_to(token) if "Scheduled" in str(r.get("text", ""))]

"""The Slack side: signatures on every request, replays and Slack's retries handled once, and a
listener that breaks answers with a short apology and a request id, leaking nothing."""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlmodel import Session, select

from bot.infra.logs import JsonFormatter
from bot.sandbox.harness import SIGNING_SECRET, reply_text, sign
from bot.sandbox.slack import TEAM_ID
from bot.slack.ids import ActionId
from db.models import LedgerEntry


def ledger(bot: Any) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def command_body(bot: Any, text: str, token: str = "tok") -> str:
    return urlencode({"command": "/sms", "text": text, "user_id": "U0ALICE01", "user_name": "alice",
                      "channel_id": "C0OPS0001", "team_id": TEAM_ID, "api_app_id": "A0SMSOPS1",
                      "response_url": bot.slack.response_url(token), "trigger_id": "1.1.x"})


def event_body(event_id: str = "Ev0001") -> str:
    return json.dumps({"token": "x", "team_id": TEAM_ID, "api_app_id": "A0SMSOPS1", "type": "event_callback",
                       "event_id": event_id, "event_time": int(time.time()),
                       "event": {"type": "app_home_opened", "user": "U0ALICE01", "channel": "D0001", "tab": "home"}})


def later() -> datetime:
    return datetime.now(UTC) + timedelta(hours=2)


# --- signatures ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["command", "click", "event"])
@pytest.mark.parametrize("forgery", ["no headers", "wrong secret", "stale", "future", "tampered body"])
def test_every_request_kind_is_refused_without_a_valid_fresh_signature(bot, telnyx, kind, forgery):
    message_id = telnyx.add_message(send_at=later())
    if kind == "command":
        body, ctype = command_body(bot, f"cancel {message_id}"), "application/x-www-form-urlencoded"
    elif kind == "click":
        payload = {"type": "block_actions", "user": {"id": "U0ALICE01"}, "team": {"id": TEAM_ID},
                   "actions": [{"action_id": "cancel_batch", "value": "x"}], "response_url": "http://x"}
        body, ctype = urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded"
    else:
        body, ctype = event_body(), "application/json"
    now = int(time.time())
    headers = {
        "no headers": {},
        "wrong secret": sign(body, secret=SIGNING_SECRET + "x"),
        "stale": sign(body, timestamp=now - 6 * 60),
        "future": sign(body, timestamp=now + 6 * 60),
        "tampered body": sign(body + "&x=1"),
    }[forgery]
    response = bot.http.post(f"{bot.url}/slack/events", content=body.encode(),
                             headers={"content-type": ctype, **headers})
    assert response.status_code == 401
    time.sleep(0.1)
    assert telnyx.server.requests == []
    assert bot.slack.calls == [] and bot.slack.responses == []
    assert ledger(bot) == []


# --- replays and retries ---------------------------------------------------------------------------

def test_a_replayed_request_is_processed_once(bot, telnyx):
    message_id = telnyx.add_message(send_at=later())
    body = command_body(bot, f"cancel {message_id}", token="replay")
    headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
    first = bot.http.post(f"{bot.url}/slack/events", content=body.encode(), headers=headers)
    again = [bot.http.post(f"{bot.url}/slack/events", content=body.encode(), headers=headers) for _ in range(3)]
    assert first.status_code == 200 and "Cancelling" in first.json()["text"]
    assert all(r.status_code == 200 and r.content == b"" for r in again)
    assert "Cancelled" in reply_text(bot.final_reply("replay"))
    time.sleep(0.3)
    assert len(telnyx.server.requests_to("DELETE")) == 1
    assert [e.action for e in ledger(bot)] == ["cancelled"]


def test_slacks_own_retries_are_processed_once(bot):
    """Slack re-sends an event it got no timely answer for, freshly signed, with X-Slack-Retry-Num."""
    body = event_body("Ev0RETRY01")
    first = bot.post_signed(body, content_type="application/json")
    retries = [bot.post_signed(body, content_type="application/json", timestamp=int(time.time()) + n,
                               headers={"x-slack-retry-num": str(n), "x-slack-retry-reason": "http_timeout"})
               for n in (1, 2, 3)]
    assert first.status_code == 200 and all(r.status_code == 200 for r in retries)
    bot.slack.wait_for(lambda: bot.slack.calls_to("views.publish"), 5)
    time.sleep(0.3)
    assert len(bot.slack.calls_to("views.publish")) == 1


def test_a_retried_command_is_processed_once(bot, telnyx):
    message_id = telnyx.add_message(send_at=later())
    body = command_body(bot, f"cancel {message_id}", token="retried")
    bot.post_signed(body)
    bot.post_signed(body, timestamp=int(time.time()) + 1, headers={"x-slack-retry-num": "1"})
    assert "Cancelled" in reply_text(bot.final_reply("retried"))
    time.sleep(0.3)
    assert len(telnyx.server.requests_to("DELETE")) == 1
    assert len(bot.replies("retried")) == 1


# --- a listener that breaks ------------------------------------------------------------------------

SECRETISH = "boom: token=xoxb-test-token key=NCSFAKEAPIKEY0001"


def _rid(text: str) -> str:
    found = re.search(r"ref `([0-9a-f]{12})`", text)
    assert found, text
    return found.group(1)


def _assert_apology(text: str) -> None:
    assert text.startswith("⚠️ Sorry, something went wrong on our side"), text
    for leak in ("Traceback", "RuntimeError", "boom", "xoxb", "NCSFAKE", "File \""):
        assert leak not in text, text
    assert len(text) < 300


@pytest.mark.secrets_on_purpose
def test_a_command_that_breaks_after_the_ack_apologises_with_the_request_id(bot, monkeypatch, caplog):
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRETISH)

    monkeypatch.setattr("bot.slack.listeners.commands.run", broken)
    caplog.set_level(logging.INFO)
    _, token = bot.command("list mine")
    text = reply_text(bot.final_reply(token))
    _assert_apology(text)
    rid = _rid(text)
    failures = [r for r in caplog.records if r.getMessage() == "listener failed"]
    assert failures and failures[0].exc_info is not None
    logged = json.loads(JsonFormatter([]).format(failures[0]))  # the JSON line the bot writes
    assert logged["request_id"] == rid and "Traceback" in logged["exc"]


@pytest.mark.secrets_on_purpose
def test_a_click_that_breaks_apologises_with_the_request_id(bot, monkeypatch, caplog):
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRETISH)

    monkeypatch.setattr("bot.operations.approval.decide", broken)
    caplog.set_level(logging.INFO)
    _, token = bot.click(ActionId.APPROVE.value, "nope")
    text = reply_text(bot.final_reply(token))
    _assert_apology(text)
    assert [getattr(r, "request_id", None) for r in caplog.records if r.getMessage() == "listener failed"] == \
        [_rid(text)]


@pytest.mark.secrets_on_purpose
def test_a_command_that_breaks_before_the_ack_still_gets_an_apology(bot, monkeypatch, caplog):
    """The parser breaking (a bug) neither loses the request nor answers with a bare 500: the ack says it is
    being worked on, and the worker that meets the bug apologises with the request's id."""
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(SECRETISH)

    monkeypatch.setattr("bot.domain.commands.parse", broken)
    caplog.set_level(logging.INFO)
    response, token = bot.command("list mine")
    assert response.status_code == 200
    assert SECRETISH not in response.text
    text = reply_text(bot.final_reply(token))
    _assert_apology(text)
    rid = _rid(text)
    assert [getattr(r, "request_id", None) for r in caplog.records if r.getMessage() == "listener failed"] == [rid]

"""/sms cancel, end to end: signed slash command → bot → fake provider → answer → ledger."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.sandbox.harness import reply_text
from db.models import LedgerEntry


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def test_cancel_telnyx_message(bot, telnyx):
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2))
    response, token = bot.command(f"cancel {message_id}")
    assert response.status_code == 200
    final = bot.final_reply(token)
    assert "Cancelled" in reply_text(final)
    assert telnyx.status_of(message_id) == "cancelled"
    entries = ledger(bot)
    assert [(e.action, e.outcome, e.target, e.actor, e.channel) for e in entries] == [
        ("cancelled", "ok", message_id, "U0ALICE01", "C0OPS0001")
    ]
    assert telnyx.spec_violations == []


def test_cancel_solapi_group(bot, solapi):
    group_id = solapi.add_group(status="SCHEDULED", scheduled_at=datetime.now(UTC) + timedelta(days=1))
    _, token = bot.command(f"cancel {group_id}")
    assert "Cancelled" in reply_text(bot.final_reply(token))
    assert solapi.group(group_id)["status"] == "FAILED"  # Solapi marks a cancelled group FAILED
    assert [(e.action, e.outcome) for e in ledger(bot)] == [("cancelled", "ok")]


def test_cancel_highlevel_message(bot, highlevel):
    message_id = highlevel.add_message()
    _, token = bot.command(f"cancel highlevel:{message_id}")
    assert "Cancelled" in reply_text(bot.final_reply(token))
    assert highlevel.status_of(message_id) != "scheduled"
    assert [(e.action, e.outcome, e.target) for e in ledger(bot)] == [("cancelled", "ok", message_id)]


def test_telnyx_cancel_of_an_untracked_message_within_a_minute_shows_telnyx_refusal(bot, telnyx):
    # Telnyx's payload has no send_at, so for a message the bot did not schedule the time is unknown:
    # the cancel is attempted, and Telnyx's refusal is shown and recorded (the guard needs a known time).
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(seconds=30))
    _, token = bot.command(f"cancel telnyx:{message_id}")
    text = reply_text(bot.final_reply(token))
    assert "Not cancelled" in text and "Message cannot be cancelled" in text
    assert telnyx.status_of(message_id) == "scheduled"
    entries = ledger(bot)
    assert [(e.action, e.outcome) for e in entries] == [("failed", "error")]
    assert "cannot be cancelled" in entries[0].detail


def test_solapi_pending_group_explains_the_rule(bot, solapi):
    group_id = solapi.add_group(status="PENDING")
    _, token = bot.command(f"cancel {group_id}")
    text = reply_text(bot.final_reply(token))
    assert "'SCHEDULED' 상태의 그룹만 취소가 가능합니다." in text
    assert "PENDING" in text and "/sms delete" in text
    assert [(e.action, e.outcome) for e in ledger(bot)] == [("failed", "error")]


def test_ack_is_fast_while_the_provider_is_slow(bot, telnyx):
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2))
    telnyx.server.faults.latency(5.0, method="DELETE")
    bot.settings  # the bot's read timeout (3 s in tests) is shorter than the latency: it must say so
    started = time.perf_counter()
    response, token = bot.command(f"cancel {message_id}")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < 1.0, f"ack took {elapsed:.2f}s"
    assert "Cancelling" in response.json()["text"]
    final = bot.final_reply(token, timeout=30)
    assert final  # an answer arrives after the ack, whatever it says


def test_bad_signature_and_stale_timestamp_get_401_and_touch_nothing(bot, telnyx):
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2))
    body = f"command=%2Fsms&text=cancel+{message_id}&user_id=U1&channel_id=C1&team_id=T1&response_url=x"
    forged = bot.http.post(f"{bot.url}/slack/events", content=body, headers={
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=" + "0" * 64})
    stale = bot.post_signed(body, timestamp=int(time.time()) - 301)
    assert forged.status_code == 401
    assert stale.status_code == 401
    time.sleep(0.3)
    assert telnyx.server.requests == []
    assert ledger(bot) == []

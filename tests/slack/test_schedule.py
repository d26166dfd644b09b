"""/sms schedule, track, list and the Cancel button, end to end, for each provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import LedgerEntry, TrackedSend
from tests.reminders.conftest import stored_jobs


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def tracked(bot) -> list[TrackedSend]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(TrackedSend)))


def iso_in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).replace(microsecond=0).isoformat()


def notice(bot, channel="C0OPS0001"):
    return bot.slack.wait_for(lambda: bot.slack.channel_messages(channel), 10)[-1]


@pytest.mark.parametrize("provider,to", [
    ("telnyx", "+15551230001"),
    ("solapi", "+821012345678"),
    ("highlevel", "cT9kQ2mN4pR6sV8xZ1aB"),
    ("twilio", "+15558675310"),
])
def test_schedule_posts_a_notice_whose_cancel_button_works(bot, telnyx, solapi, highlevel, twilio, provider, to):
    _, token = bot.command(f"schedule {provider} {to} at {iso_in(timedelta(hours=3))} Doors open at 10 🎉")
    reply = reply_text(bot.final_reply(token))
    assert "Scheduled with" in reply, reply
    sends = tracked(bot)
    assert len(sends) == 1 and sends[0].state == "scheduled" and sends[0].created_by == "U0ALICE01"
    target = sends[0].target
    # the provider got exactly one schedule, and holds it as scheduled
    if provider == "telnyx":
        assert telnyx.status_of(target) == "scheduled"
        assert telnyx.messages[target]["text"] == "Doors open at 10 🎉"
        assert telnyx.spec_violations == []
    elif provider == "solapi":
        assert solapi.group(target)["status"] == "SCHEDULED"
    elif provider == "twilio":
        assert twilio.status_of(target) == "scheduled"
        assert twilio.messages[target]["body"] == "Doors open at 10 🎉"
    else:
        assert highlevel.status_of(target) == "scheduled"
        assert highlevel.spec_violations == []
    message = notice(bot)
    text = reply_text({"blocks": message.blocks})
    assert "<@U0ALICE01> scheduled an SMS" in text
    cancel, _change_time = buttons(message.blocks)  # Cancel, then Change time
    assert cancel["action_id"] == ActionId.CANCEL_BATCH and "confirm" in cancel
    # another member clicks Cancel on the notice (no admins configured: every member may)
    _, click = bot.click(cancel["action_id"], cancel["value"], user="U0BOB0001", message_ts=message.ts)
    assert "Cancelled" in reply_text(bot.final_reply(click))
    updated = bot.slack.wait_for(lambda: message.history and message, 5)
    assert buttons(updated.blocks) == []
    assert "Cancelled by <@U0BOB0001>" in reply_text({"blocks": updated.blocks})
    assert [(e.action, e.actor) for e in ledger(bot)] == [("scheduled", "U0ALICE01"), ("cancelled", "U0BOB0001")]
    # a second click changes nothing at the provider and says what happened
    deletes_before = len([r for r in (telnyx.server.requests + solapi.requests + highlevel.server.requests)
                          if r.method == "DELETE"])
    twilio_cancels_before = len([r for r in twilio.server.requests if b"Status=canceled" in r.body])
    _, again = bot.click(cancel["action_id"], cancel["value"], user="U0CAROL01", message_ts=message.ts)
    assert "already cancelled by <@U0BOB0001>" in reply_text(bot.final_reply(again))
    deletes_after = len([r for r in (telnyx.server.requests + solapi.requests + highlevel.server.requests)
                         if r.method == "DELETE"])
    assert deletes_after == deletes_before
    assert len([r for r in twilio.server.requests if b"Status=canceled" in r.body]) == twilio_cancels_before
    assert len(ledger(bot)) == 2


def test_schedule_rules_are_checked_before_any_call(bot, telnyx):
    cases = {
        f"schedule telnyx +15551230001 at {iso_in(timedelta(minutes=2))} hi": "too soon",
        "schedule telnyx +15551230001 at 2020-01-01T00:00Z hi": "in the past",
        f"schedule telnyx 5551230001 at {iso_in(timedelta(hours=1))} hi": "E.164",
        f"schedule telnyx +15551230001 at {iso_in(timedelta(hours=1))}": "text is empty",
        f"schedule fax +15551230001 at {iso_in(timedelta(hours=1))} hi": "not a provider",
        f"schedule solapi +821012345678 at {iso_in(timedelta(days=200))} hi": "6 months",
    }
    for command, expected in cases.items():
        response, token = bot.command(command)
        answer = response.json().get("text", "") if response.content else ""
        if expected not in answer:
            answer = reply_text(bot.final_reply(token))
        assert expected in answer, (command, answer)
    assert [r for r in telnyx.server.requests if r.method == "POST"] == []
    assert tracked(bot) == []
    # the window refusals (Telnyx too soon, Solapi 6 months) are recorded; beyond Telnyx's 5 days the
    # bot holds the send instead (tests/slack/test_held.py)
    assert sorted(e.action for e in ledger(bot)) == ["refused", "refused"]


def test_schedule_korean_text_with_solapi_keeps_every_character(bot, solapi):
    when = iso_in(timedelta(days=1))
    _, token = bot.command(f"schedule coolsms +821012345678 at {when} 내일 10시에 문이 열립니다 🚪")
    assert "Scheduled" in reply_text(bot.final_reply(token))
    [send] = tracked(bot)
    assert [m["text"] for m in solapi.messages_of(send.target)] == ["내일 10시에 문이 열립니다 🚪"]


def test_schedule_to_a_thousand_recipients(bot, solapi):
    numbers = ",".join(f"+8210{n:08d}" for n in range(1000))
    _, token = bot.command(f"schedule solapi {numbers} in 2h Big announcement")
    assert "to 1000 recipient(s)" in reply_text(bot.final_reply(token, timeout=30))
    [send] = tracked(bot)
    assert len(solapi.messages_of(send.target)) == 1000


def test_track_list_and_status(bot, telnyx, solapi):
    _, t0 = bot.command("list")
    assert reply_text(bot.final_reply(t0)).endswith("You have no upcoming sends. `/sms list all` shows everyone's.")
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=4), to="+15551230009")
    group_id = solapi.add_group(status="SCHEDULED", scheduled_at=datetime.now(UTC) + timedelta(hours=1))
    _, t1 = bot.command(f"track telnyx {message_id}")
    assert "Following" in reply_text(bot.final_reply(t1))
    _, t2 = bot.command(f"track solapi {group_id}", user="U0BOB0001")
    assert "Following" in reply_text(bot.final_reply(t2))
    _, t3 = bot.command("list all")
    listing = reply_text(bot.final_reply(t3))
    assert listing.index(group_id) < listing.index(message_id)  # soonest first
    assert "<@U0BOB0001>" in listing
    _, t4 = bot.command("list mine")
    mine = reply_text(bot.final_reply(t4))
    assert message_id in mine and group_id not in mine
    _, t5 = bot.command(f"status {message_id}")
    status = reply_text(bot.final_reply(t5))
    assert "`scheduled`" in status and "+15551230009" in status
    assert [e.action for e in ledger(bot)] == ["tracked", "tracked"]


def test_unknown_and_malformed_ids_get_specific_answers(bot, telnyx):
    cases = {
        "cancel not-an-id!": "not an id",
        "cancel abc123": "can't tell which provider",
        "cancel telnyx:abc": "not a Telnyx message id",
        "cancel fax:123": "not a provider",
        "status 00000000-0000-4000-8000-000000000000": "does not know that id",
    }
    for command, expected in cases.items():
        response, token = bot.command(command)
        text = response.json().get("text", "") if response.content else ""
        if expected not in text:
            text = reply_text(bot.final_reply(token))
        assert expected in text, (command, text)
    assert ledger(bot) == []


def test_unconfigured_provider_is_named(make_bot, telnyx):
    bot = make_bot(highlevel_token=None)
    _, token = bot.command("cancel highlevel:ve9EPM428h8vShlRW1KT")
    assert "HighLevel is not configured here: set HIGHLEVEL_TOKEN" in reply_text(bot.final_reply(token))
    assert ledger(bot) == []


def test_permissions_others_may_not_cancel_and_the_refusal_is_recorded(make_bot, telnyx):
    bot = make_bot(sms_admins="U0ADMIN01")
    _, token = bot.command(f"schedule telnyx +15551230001 at {iso_in(timedelta(hours=2))} hi")
    bot.final_reply(token)
    message = notice(bot)
    cancel, _change_time = buttons(message.blocks)  # Cancel, then Change time
    _, click = bot.click(cancel["action_id"], cancel["value"], user="U0MALLORY")
    text = reply_text(bot.final_reply(click))
    assert "Not cancelled" in text and "<@U0ALICE01>" in text
    assert [r for r in telnyx.server.requests if r.method == "DELETE"] == []
    assert [(e.action, e.actor) for e in ledger(bot)][-1] == ("refused", "U0MALLORY")
    _, click = bot.click(cancel["action_id"], cancel["value"], user="U0ADMIN01")
    assert "Cancelled" in reply_text(bot.final_reply(click))


@pytest.mark.parametrize("provider,to", [
    ("telnyx", "+15551230001"),
    ("solapi", "+821012345678"),
    ("highlevel", "cT9kQ2mN4pR6sV8xZ1aB"),
    ("twilio", "+15558675310"),
])
def test_on_postgresql_schedule_then_cancel_leaves_no_reminder_and_two_entries(
        make_bot, telnyx, solapi, highlevel, pg_url, provider, to):
    """The whole path on PostgreSQL (a language collation: tests/support/pg.py), as replicas run it."""
    bot = make_bot(database_url=pg_url, reminder_leads="1h,10m")
    _, token = bot.command(f"schedule {provider} {to} at {iso_in(timedelta(hours=3))} Doors open at 10")
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    [send] = tracked(bot)
    reminders = bot.services.reminders
    assert len(stored_jobs(reminders, send.batch_id)) == 2

    _, token = bot.command(f"cancel {provider}:{send.target}", user="U0ALICE01")
    assert "Cancelled" in reply_text(bot.final_reply(token))
    [after] = tracked(bot)
    assert after.state == "cancelled"
    assert stored_jobs(reminders, send.batch_id) == []
    assert [(e.action, e.outcome, e.target) for e in ledger(bot)] == [
        ("scheduled", "ok", send.target), ("cancelled", "ok", send.target)]
    from db.ledger import verify  # the chain written through PostgreSQL verifies
    assert verify(bot.services.engine).ok


def test_the_twilio_window_is_checked_before_any_call_with_the_rule_in_the_answer(bot, twilio):
    cases = {
        f"schedule twilio +15558675310 at {iso_in(timedelta(minutes=10))} hi":
            "Twilio schedules 15 minutes to 35 days ahead; 9m 5",  # 9m 59s, or 58s on a busy machine
        # beyond the window the bot holds it (tests/slack/test_held.py), still without a call
        f"schedule twilio +15558675310 at {iso_in(timedelta(days=36))} hi": "Twilio schedules at most 35 days ahead",
    }
    for command, expected in cases.items():
        _, token = bot.command(command)
        answer = reply_text(bot.final_reply(token))
        assert expected in answer, (command, answer)
    assert twilio.server.requests == []
    assert [e.action for e in ledger(bot)] == ["refused", "scheduled"]
    assert "schedule refused: Twilio schedules" in ledger(bot)[0].detail

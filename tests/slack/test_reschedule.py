"""/sms reschedule, end to end: signed slash commands → bot → the simulated provider → answers, notices,
reminders and the ledger."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import LedgerEntry, TrackedSend
from tests.reminders.conftest import stored_jobs

RECIPIENT = {"telnyx": "+15551230001", "solapi": "+821012345678", "highlevel": "cT9kQ2mN4pR6sV8xZ1aB",
             "twilio": "+15558675310"}
TEXT = "Doors open at 10 🎉"
# A refusal as each provider words it, for the schedule half (path, body)
REFUSAL = {
    "telnyx": ("/messages/schedule", {"errors": [{"code": "40300", "title": "Blocked", "detail": "number blocked"}]}),
    "twilio": ("/Messages.json", {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                                  "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}),
    "highlevel": ("/conversations/messages", {"statusCode": 400, "message": "Contact is DND for SMS"}),
}


def iso_in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def tracked(bot) -> list[TrackedSend]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(TrackedSend).order_by(TrackedSend.created_at)))


def schedule(bot, provider: str, ahead: timedelta = timedelta(hours=3)) -> TrackedSend:
    _, token = bot.command(f"schedule {provider} {RECIPIENT[provider]} at {iso_in(ahead)} {TEXT}")
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    bot.slack.wait_for(lambda: [s for s in tracked(bot) if s.notice_ts], 5)
    [send] = tracked(bot)
    return send


def provider_state(provider: str, fakes: dict, target: str) -> str:
    if provider == "solapi":
        return str(fakes["solapi"].group(target)["status"])
    return fakes[provider].status_of(target)


@pytest.fixture
def fakes(telnyx, solapi, highlevel, twilio) -> dict:
    return {"telnyx": telnyx, "solapi": solapi, "highlevel": highlevel, "twilio": twilio}


@pytest.mark.parametrize("provider", ["telnyx", "solapi", "highlevel", "twilio"])
def test_reschedule_moves_the_send_its_reminders_and_its_notice(make_bot, fakes, provider):
    bot = make_bot(reminder_leads="15m")
    old = schedule(bot, provider)
    old_jobs = stored_jobs(bot.services.reminders, old.batch_id)
    assert old_jobs
    new_at = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)

    _, token = bot.command(f"reschedule {old.target} at {new_at.isoformat().replace('+00:00', 'Z')}")
    text = reply_text(bot.final_reply(token))
    assert f"Moved {'Solapi' if provider == 'solapi' else ''}".strip() in text and "to " + \
        new_at.strftime("%Y-%m-%d %H:%M:%S UTC") in text, text

    sends = tracked(bot)
    upcoming = [s for s in sends if s.state == "scheduled"]
    [new] = upcoming
    assert new.send_at == new_at and new.batch_id != old.batch_id
    assert provider_state(provider, fakes, new.target).lower() == "scheduled"
    if provider == "solapi":  # the same group, given its new date
        assert new.target == old.target
        assert fakes["solapi"].group(old.target)["scheduledDate"].startswith(new_at.strftime("%Y-%m-%dT%H:%M"))
    else:  # cancelled, then the same content scheduled again
        assert new.target != old.target
        assert provider_state(provider, fakes, old.target).lower() in ("cancelled", "canceled")
        assert [s.state for s in sends if s.target == old.target] == ["cancelled"]
    if provider == "telnyx":
        assert fakes["telnyx"].messages[new.target]["text"] == TEXT
        assert fakes["telnyx"].send_at_of(new.target) == new_at
    if provider == "twilio":
        assert fakes["twilio"].messages[new.target]["body"] == TEXT

    # reminders: planned for the new time, none left for the old batch
    assert stored_jobs(bot.services.reminders, new.batch_id)
    assert stored_jobs(bot.services.reminders, old.batch_id) == [] or provider == "solapi"

    # the ledger links the two ids, and /sms audit finds the link from either
    entries = ledger(bot)
    moved = [e for e in entries if e.action == "rescheduled"]
    assert len(moved) == 1 and moved[0].target == old.target and moved[0].actor == "U0ALICE01"
    if provider != "solapi":
        assert new.target in moved[0].detail
        [again] = [e for e in entries if e.action == "scheduled" and e.target == new.target]
        assert old.target in again.detail
    for target in {old.target, new.target}:
        _, audit = bot.command(f"audit {target}")
        assert "rescheduled" in reply_text(bot.final_reply(audit))

    # the old notice says where it went, without buttons; a new notice carries the buttons
    messages = bot.slack.channel_messages("C0OPS0001")
    first = next(m for m in messages if m.ts == old.notice_ts)
    assert buttons(first.blocks) == [] and "Moved by <@U0ALICE01>" in reply_text({"blocks": first.blocks})
    latest = bot.slack.wait_for(lambda: [m for m in bot.slack.channel_messages("C0OPS0001") if m.ts != old.notice_ts
                                         and "rescheduled an SMS" in reply_text({"blocks": m.blocks})], 5)[-1]
    assert ActionId.CANCEL_BATCH in [b["action_id"] for b in buttons(latest.blocks)]


@pytest.mark.parametrize("provider", ["telnyx", "highlevel", "twilio"])
def test_when_scheduling_again_fails_the_user_is_told_it_is_cancelled_not_moved(bot, fakes, provider):
    old = schedule(bot, provider)
    path, body = REFUSAL[provider]
    fakes[provider].server.faults.status(400, json.dumps(body), method="POST", path_contains=path, times=1)

    _, token = bot.command(f"reschedule {old.target} at {iso_in(timedelta(hours=6))}")
    text = reply_text(bot.final_reply(token))
    assert "is now cancelled, not moved" in text and "Nothing will go out" in text, text
    assert provider_state(provider, fakes, old.target).lower() in ("cancelled", "canceled")
    assert [s.state for s in tracked(bot)] == ["cancelled"]
    card = next(m for m in bot.slack.channel_messages("C0OPS0001") if m.ts == old.notice_ts)
    assert "Cancelled, not moved" in reply_text({"blocks": card.blocks}) and buttons(card.blocks) == []
    last = ledger(bot)[-1]
    assert (last.action, last.outcome, last.target) == ("failed", "error", old.target)
    assert "cancelled, not moved" in last.detail


def test_the_telnyx_guard_refuses_the_cancel_half_and_nothing_changes(bot, telnyx):
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(seconds=40), to=RECIPIENT["telnyx"])
    _, token = bot.command(f"track telnyx {message_id}")
    bot.final_reply(token)
    with Session(bot.services.engine) as session:  # the ledger knows its time (as for one the bot scheduled)
        send = session.exec(select(TrackedSend)).one()
        send.send_at = telnyx.send_at_of(message_id)
        session.add(send)
        session.commit()

    _, token = bot.command(f"reschedule {message_id} at {iso_in(timedelta(hours=2))}")
    text = reply_text(bot.final_reply(token))
    assert "Not moved" in text and "Telnyx cancels only more than" in text, text
    assert telnyx.status_of(message_id) == "scheduled"
    assert telnyx.server.requests_to("DELETE") == [] and telnyx.server.requests_to("POST") == []
    last = ledger(bot)[-1]
    assert (last.action, last.outcome) == ("refused", "refused") and "Telnyx cancel guard" in last.detail


def test_the_new_time_must_be_inside_the_providers_window(bot, twilio):
    old = schedule(bot, "twilio")
    _, token = bot.command(f"reschedule {old.target} in 5m")
    text = reply_text(bot.final_reply(token))
    assert "Not moved: Twilio schedules 15 minutes to 35 days ahead" in text, text
    assert twilio.status_of(old.target) == "scheduled"
    last = ledger(bot)[-1]
    assert (last.action, last.outcome) == ("refused", "refused") and "Twilio schedules" in last.detail


def test_only_the_owner_or_an_admin_may_reschedule(make_bot, telnyx):
    bot = make_bot(sms_admins="U0ADMIN01")
    old = schedule(bot, "telnyx")
    _, token = bot.command(f"reschedule {old.target} at {iso_in(timedelta(hours=4))}", user="U0BOB0001")
    text = reply_text(bot.final_reply(token))
    assert "Not moved: only <@U0ALICE01>, who scheduled it, or an admin" in text, text
    assert telnyx.status_of(old.target) == "scheduled"
    assert ledger(bot)[-1].action == "refused"


def test_solapi_refusing_the_new_date_leaves_the_group_where_it_was(bot, solapi):
    old = schedule(bot, "solapi")
    solapi.server.faults.status(400, json.dumps({"errorCode": "InvalidScheduledDate",
                                                 "errorMessage": "예약시간은 현재시간보다 늦게 설정 가능합니다."}),
                                method="POST", path_contains="/schedule", times=1)
    _, token = bot.command(f"reschedule {old.target} at {iso_in(timedelta(hours=8))}")
    text = reply_text(bot.final_reply(token))
    assert "Not moved" in text and "still goes out at" in text, text
    assert solapi.group(old.target)["status"] == "SCHEDULED"
    assert [(s.state, s.send_at) for s in tracked(bot)] == [("scheduled", old.send_at)]
    assert ledger(bot)[-1].action == "failed"


def test_a_move_into_quiet_hours_is_refused_before_anything_is_cancelled(make_bot, telnyx):
    from zoneinfo import ZoneInfo

    bot = make_bot(quiet_hours="21:00-08:00")
    new_york = ZoneInfo("America/New_York")
    noon = (datetime.now(new_york) + timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)
    night = noon.replace(hour=23)
    _, token = bot.command(f"schedule telnyx +12125551234 at {noon.isoformat()} {TEXT}")
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    [send] = tracked(bot)
    _, token = bot.command(f"reschedule {send.target} at {night.isoformat()}")
    answer = reply_text(bot.final_reply(token))
    assert "Not moved; nothing was cancelled" in answer and "quiet hours" in answer, answer
    assert telnyx.status_of(send.target) == "scheduled"
    assert telnyx.server.requests_to("DELETE") == []
    assert "reschedule refused by quiet hours" in ledger(bot)[-1].detail

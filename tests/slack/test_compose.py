"""The compose form and "Change time", black box: signed slash commands, shortcuts, clicks and view
submissions against the sandbox Slack, which opens, updates and closes modals as Slack does."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, select

from bot.sandbox.harness import buttons, reply_text
from bot.sandbox.slack import FakeSlack
from bot.slack.ids import ActionId
from db.models import LedgerEntry, TrackedSend


@pytest.fixture
def slack():
    fake = FakeSlack(user_tz={"U0ALICE01": "Asia/Seoul"}).start()
    try:
        yield fake
    finally:
        fake.stop()


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def tracked(bot) -> list[TrackedSend]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(TrackedSend)))


def view_text(view: dict) -> str:
    return reply_text({"blocks": view["blocks"]})


def open_form(bot) -> dict:
    response, _ = bot.command("schedule")
    assert response.status_code == 200
    return bot.modal()


def in_seoul(delta: timedelta) -> tuple[str, str]:
    local = (datetime.now(UTC) + delta).astimezone(ZoneInfo("Asia/Seoul"))
    return local.strftime("%Y-%m-%d"), local.strftime("%H:%M")


def test_form_preview_and_schedule_from_the_slash_command(bot, telnyx):
    form = open_form(bot)
    assert form["callback_id"] == "sms_compose"
    provider = next(b for b in form["blocks"] if b["block_id"] == "provider")
    assert {o["value"] for o in provider["element"]["options"]} == {"telnyx", "solapi", "highlevel", "twilio"}
    assert "Asia/Seoul" in str(form["blocks"])  # the pickers are in the writer's zone
    day, clock = in_seoul(timedelta(hours=3))

    bot.submit_view(form, {"provider": "telnyx", "recipients": "+15551230001\n+15551230002, +15551230003",
                           "text": "Doors open at 10 {gate}", "date": day, "time": clock, "when": ""})
    preview = bot.modal()
    assert preview["id"] == form["id"] and preview["callback_id"] == "sms_compose_preview"
    shown = view_text(preview)
    assert "Telnyx" in shown and "3" in shown and "Doors open at 10 {gate}" in shown
    assert "GSM-7: 25 characters, 1 segment(s)" in shown  # `{` and `}` take two septets each
    assert "<!date^" in shown and "KST in Asia/Seoul" in shown and " UTC" in shown
    assert "Telnyx schedules 5 minutes to 5 days ahead" in shown and "Cancel guard" in shown
    assert "Approvals" in shown

    response = bot.submit_view(preview)
    assert response.json() == {"response_action": "clear"}
    assert bot.slack.open_modals("U0ALICE01") == []
    sends = bot.slack.wait_for(lambda: len(tracked(bot)) == 3 and tracked(bot), 10)
    assert {s.state for s in sends} == {"scheduled"}
    assert all(telnyx.messages[s.target]["text"] == "Doors open at 10 {gate}" for s in sends)
    answer = bot.slack.wait_for(lambda: bot.slack.calls_to("chat.postEphemeral"), 5)[-1]
    assert answer.args["user"] == "U0ALICE01" and "Scheduled with Telnyx" in answer.args["text"]
    # the same submission again (Slack retrying, a double press) schedules nothing more
    bot.submit_view({**preview, "id": preview["id"]})
    time.sleep(0.3)
    assert len(tracked(bot)) == 3 and len([e for e in ledger(bot) if e.action == "scheduled"]) == 3


def test_field_errors_name_the_field_and_back_keeps_the_values(bot, solapi):
    form = open_form(bot)
    response = bot.submit_view(form, {"provider": "solapi", "recipients": "+821012345678\n12",
                                      "text": "안녕하세요", "when": "yesterday 9am"})
    errors = response.json()["errors"]
    assert response.json()["response_action"] == "errors"
    assert "12" in errors["recipients"] and "when" in errors and set(errors) == {"recipients", "when"}
    assert ledger(bot) == [] and solapi.requests == []

    response = bot.submit_view(form, {"provider": "solapi", "recipients": "010-1234-5678", "text": "안녕하세요",
                                      "when": "in 2h"})
    preview = bot.modal()
    assert "SMS: 10 bytes in EUC-KR" in view_text(preview)
    bot.click_in_view(preview, "sms_compose_back")
    form_again = bot.slack.wait_for(lambda: bot.modal()["callback_id"] == "sms_compose" and bot.modal(), 5)
    kept = {b["block_id"]: b["element"] for b in form_again["blocks"] if b["type"] == "input"}
    assert kept["recipients"]["initial_value"] == "010-1234-5678"
    assert kept["text"]["initial_value"] == "안녕하세요" and kept["when"]["initial_value"] == "in 2h"
    assert kept["provider"]["initial_option"]["value"] == "solapi"
    assert tracked(bot) == []  # nothing was scheduled by previewing


def test_window_rule_is_an_error_on_the_time(bot, twilio):
    form = open_form(bot)
    response = bot.submit_view(form, {"provider": "twilio", "recipients": "+15558675310", "text": "Hi",
                                      "when": "in 5m"})
    assert "Twilio schedules 15 minutes to 35 days ahead" in response.json()["errors"]["when"]


def test_the_shortcut_and_app_home_open_the_form_and_ask_where_to_post(bot, telnyx):
    assert bot.shortcut("sms_compose").status_code == 200
    form = bot.modal()
    assert "channel" in [b["block_id"] for b in form["blocks"]]
    bot.slack.modals.clear()
    bot.click_in_home(ActionId.COMPOSE)
    form = bot.modal()
    bot.submit_view(form, {"provider": "telnyx", "recipients": "+15551230001", "text": "Hi", "when": "in 2h",
                           "channel": "C0OPS0002"})
    bot.submit_view(bot.modal())
    notice = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0002"), 10)[-1]
    assert "scheduled an SMS" in reply_text({"blocks": notice.blocks})


def test_an_expired_trigger_opens_nothing_and_the_command_says_how_to_type_it(bot):
    trigger = bot.slack.new_trigger("U0ALICE01")
    bot.slack.triggers[trigger] = ("U0ALICE01", time.monotonic() - 4)  # issued 4 s ago: Slack refuses it
    _, token = bot.command("schedule", trigger_id=trigger)
    text = reply_text(bot.slack.wait_for(lambda: bot.replies(token), 5)[-1])
    assert "The form did not open" in text and "/sms schedule <provider>" in text
    assert bot.slack.open_modals("U0ALICE01") == []
    assert bot.slack.calls_to("views.open")[-1].args["trigger_id"] == trigger


def test_change_time_button_moves_the_send(bot, telnyx):
    at = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    _, token = bot.command(f"schedule telnyx +15551230001 at {at} Hi")
    bot.final_reply(token)
    notice = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)[-1]
    change = next(b for b in buttons(notice.blocks) if b["action_id"] == ActionId.RESCHEDULE)
    bot.click(change["action_id"], change["value"], message_ts=notice.ts)
    form = bot.modal()
    assert form["callback_id"] == "sms_reschedule"
    assert "when" in bot.submit_view(form, {"when": "tomorrow 9am hello"}).json()["errors"]
    assert bot.submit_view(form, {"when": "in 4h"}).json() == {"response_action": "clear"}
    answer = bot.slack.wait_for(lambda: bot.slack.calls_to("chat.postEphemeral"), 10)[-1]
    assert "Moved Telnyx" in answer.args["text"]
    upcoming = [s for s in tracked(bot) if s.state == "scheduled"]
    assert len(upcoming) == 1 and upcoming[0].send_at > datetime.now(UTC) + timedelta(hours=3, minutes=50)
    assert [e.action for e in ledger(bot)].count("rescheduled") == 1

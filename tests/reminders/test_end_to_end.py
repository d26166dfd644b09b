"""Reminders end to end: the whole bot over HTTP, the fake Slack and the fake providers, leads of seconds.

Telnyx schedules at least 5 minutes ahead, so a "short lead" here is a lead a few seconds shorter than
the time to the send: `/sms schedule … in 309s` with REMINDER_LEADS=305s reminds 4 seconds later."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.sandbox.harness import BotHarness, buttons, reply_text
from bot.sandbox.slack import FakeSlack, SlackCall
from db.models import LedgerEntry, ReminderClaim, TrackedSend
from tests.reminders.conftest import stored_jobs

OWNER = "U0ALICE01"
CHANNEL = "C0OPS0001"
ON_TIME = 2.0  # seconds


def reminder_posts(slack: FakeSlack) -> list[SlackCall]:
    def is_reminder(call: SlackCall) -> bool:
        blocks = call.args.get("blocks") or []
        return bool(blocks) and str(blocks[0].get("text", {}).get("text", "")).startswith("⏰")
    return [c for c in slack.calls_to("chat.postMessage") if is_reminder(c)]


def schedule(bot: BotHarness, text: str, user: str = OWNER) -> list[TrackedSend]:
    _, token = bot.command(text, user=user, channel=CHANNEL)
    reply = reply_text(bot.final_reply(token))
    assert "Scheduled" in reply, reply
    with Session(bot.services.engine) as session:
        sends = list(session.exec(select(TrackedSend).order_by(col(TrackedSend.created_at).desc())))
    batch = sends[0].batch_id
    return [s for s in sends if s.batch_id == batch]


def due(send: TrackedSend, lead_seconds: int) -> float:
    assert send.send_at is not None
    return (send.send_at - timedelta(seconds=lead_seconds)).timestamp()


def entries(bot: BotHarness, **where: Any) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        rows = list(session.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq))))
    return [e for e in rows if all(getattr(e, k) == v for k, v in where.items())]


def claims(bot: BotHarness) -> list[tuple[str, int, str]]:
    with Session(bot.services.engine) as session:
        return [(c.send_id, c.lead_seconds, c.status) for c in session.exec(select(ReminderClaim))]


def wait_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def assert_on_time(post: SlackCall, expected: float) -> None:
    late = post.at - expected
    assert -0.2 <= late <= ON_TIME, f"the reminder came {late:+.2f}s from its time"


def test_reminders_arrive_once_at_each_lead_tag_the_owner_and_cancel_works(make_bot, slack, telnyx):
    bot = make_bot(reminder_leads="307s,305s")
    sends = schedule(bot, "schedule telnyx +18665550101,+18665550102 in 309s Doors open at 10")
    assert len(sends) == 2 and len({s.batch_id for s in sends}) == 1
    first, second = due(sends[0], 307), due(sends[0], 305)

    slack.wait_for(lambda: len(reminder_posts(slack)) >= 1, timeout=first - time.time() + 5)
    assert_on_time(reminder_posts(slack)[0], first)
    slack.wait_for(lambda: len(reminder_posts(slack)) >= 2, timeout=second - time.time() + 5)
    assert_on_time(reminder_posts(slack)[1], second)
    time.sleep(0.7)
    posts = reminder_posts(slack)
    assert len(posts) == 2, "one reminder per lead, once"

    post = posts[-1]
    assert post.args["channel"] == CHANNEL
    text = reply_text({"text": post.args.get("text", ""), "blocks": post.args["blocks"]})
    assert f"<@{OWNER}>" in text  # tags who scheduled it
    assert "Doors open at 10" in text and "*Recipients*\n2" in text and "goes out in" in text
    cancel, _change_time = buttons(post.args["blocks"])  # Cancel, then Change time
    assert cancel["action_id"] == "sms_cancel" and cancel["value"] == sends[0].batch_id
    assert cancel["confirm"]["confirm"]["text"] == "Cancel it"

    reminded = entries(bot, action="reminded")
    assert [(e.actor, e.outcome, e.channel) for e in reminded] == [("system", "ok", CHANNEL)] * 2

    _, token = bot.click("sms_cancel", cancel["value"], user=OWNER, channel=CHANNEL)
    assert "Cancelled 2 of 2" in reply_text(bot.final_reply(token))
    assert {telnyx.status_of(s.target) for s in sends} == {"cancelled"}
    assert [e.actor for e in entries(bot, action="cancelled")] == [OWNER, OWNER]


def test_a_reminder_survives_a_restart_between_scheduling_and_its_time(make_bot, slack, telnyx):
    first_bot = make_bot(reminder_leads="304s")
    [send] = schedule(first_bot, "schedule telnyx +18665550103 in 309s See you soon")
    first_bot.stop()
    assert reminder_posts(slack) == []

    second_bot = make_bot(reminder_leads="304s")  # same database
    expected = due(send, 304)
    slack.wait_for(lambda: reminder_posts(slack), timeout=expected - time.time() + 5)
    time.sleep(0.7)
    posts = reminder_posts(slack)
    assert len(posts) == 1
    assert_on_time(posts[0], expected)
    assert claims(second_bot) == [(send.batch_id, 304, "posted")]


def test_a_reminder_due_while_the_bot_was_down_fires_once_on_start(make_bot, slack, telnyx):
    first_bot = make_bot(reminder_leads="306s")
    [send] = schedule(first_bot, "schedule telnyx +18665550104 in 309s Late but still ahead")
    first_bot.stop()
    wait_until(due(send, 306) + 0.5)
    assert reminder_posts(slack) == []

    started = time.time()
    second_bot = make_bot(reminder_leads="306s")
    slack.wait_for(lambda: reminder_posts(slack), timeout=5)
    assert reminder_posts(slack)[0].at - started < ON_TIME + 1
    time.sleep(0.7)
    assert len(reminder_posts(slack)) == 1
    assert claims(second_bot) == [(send.batch_id, 306, "posted")]


def test_a_reminder_whose_send_passed_while_the_bot_was_down_is_recorded_missed(make_bot, slack, highlevel):
    first_bot = make_bot(reminder_leads="3s")
    [send] = schedule(first_bot, "schedule highlevel cT9kQ2mN4pR6sV8xZ1aB in 5s Gone by the time we are back")
    first_bot.stop()
    assert send.send_at is not None
    wait_until(send.send_at.timestamp() + 0.5)

    second_bot = make_bot(reminder_leads="3s")
    slack.wait_for(lambda: claims(second_bot), timeout=5)
    time.sleep(0.5)
    assert reminder_posts(slack) == []
    assert claims(second_bot) == [(send.batch_id, 3, "missed")]
    [missed] = entries(second_bot, action="reminded")
    assert (missed.actor, missed.outcome) == ("system", "error") and "missed" in missed.detail


def test_cancelling_first_removes_the_reminder_and_a_cancel_elsewhere_stops_it(make_bot, slack, telnyx):
    bot = make_bot(reminder_leads="305s")
    [mine] = schedule(bot, "schedule telnyx +18665550105 in 308s Cancelled in Slack")
    [theirs] = schedule(bot, "schedule telnyx +18665550106 in 308s Cancelled in the Telnyx portal")
    reminders = bot.runtime.reminders
    assert stored_jobs(reminders, mine.batch_id) == [f"remind:{mine.batch_id}:305"]

    _, token = bot.command(f"cancel telnyx:{mine.target}", user=OWNER, channel=CHANNEL)
    assert "Cancelled" in reply_text(bot.final_reply(token))
    assert stored_jobs(reminders, mine.batch_id) == []
    telnyx.messages[theirs.target]["to"][0]["status"] = "cancelled"  # behind the bot's back

    wait_until(max(due(mine, 305), due(theirs, 305)) + 1.0)
    assert reminder_posts(slack) == []
    assert claims(bot) == [(theirs.batch_id, 305, "skipped")]
    [note] = entries(bot, action="cancelled", actor="system")
    assert note.target == theirs.target and "Telnyx says `cancelled`" in note.detail


def test_telnyx_inside_the_cancel_guard_gets_no_cancel_button_and_says_why(make_bot, slack, telnyx):
    bot = make_bot(reminder_leads="306s", telnyx_cancel_guard="10m")
    [send] = schedule(bot, "schedule telnyx +18665550107 in 309s Too late to cancel")
    slack.wait_for(lambda: reminder_posts(slack), timeout=due(send, 306) - time.time() + 5)
    post = reminder_posts(slack)[0]
    assert buttons(post.args["blocks"]) == []
    text = reply_text({"blocks": post.args["blocks"]})
    assert "Cancel is not offered" in text and "Telnyx cancels only more than 10m before the send time" in text


def test_a_send_moved_at_the_provider_moves_its_reminder_when_the_bot_sees_it(make_bot, slack, solapi):
    from datetime import UTC, datetime

    from bot.reminders import job_id

    bot = make_bot(reminder_leads="15m")
    start = datetime.now(UTC).replace(microsecond=0)
    group = solapi.add_group(status="SCHEDULED", scheduled_at=start + timedelta(hours=2))
    _, token = bot.command(f"track solapi {group}", user=OWNER, channel=CHANNEL)
    assert "Following" in reply_text(bot.final_reply(token))
    with Session(bot.services.engine) as session:
        [send] = session.exec(select(TrackedSend).where(TrackedSend.target == group)).all()
    reminders = bot.services.reminders

    def reminder_at() -> datetime:
        job = reminders.scheduler.get_job(job_id(send.batch_id, 900))
        assert job is not None, "the reminder is planned"
        return job.next_run_time.astimezone(UTC)

    assert reminder_at() == start + timedelta(hours=1, minutes=45)
    solapi.reschedule(group, start + timedelta(hours=3))  # moved in Solapi's console
    _, token = bot.command(f"status {group}", user=OWNER, channel=CHANNEL)
    assert "SCHEDULED" in reply_text(bot.final_reply(token))
    assert reminder_at() == start + timedelta(hours=2, minutes=45)
    with Session(bot.services.engine) as session:
        assert session.get(TrackedSend, send.id).send_at.astimezone(UTC) == start + timedelta(hours=3)

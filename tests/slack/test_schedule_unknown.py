"""A schedule whose outcome is unknown (a lost answer) is reported as unknown, never as "not
scheduled", and reconciliation settles it: Telnyx by asking again with the same Idempotency-Key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.sandbox.harness import reply_text
from db.models import Intent, LedgerEntry, TrackedSend


def rows(bot, model):
    with Session(bot.services.engine) as session:
        return list(session.exec(select(model)))


def iso_in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).replace(microsecond=0).isoformat()


def test_a_lost_telnyx_answer_is_unknown_then_settled_once_by_its_key(make_bot, telnyx):
    bot = make_bot()
    telnyx.server.faults.lose_answer(method="POST")  # Telnyx schedules it; every answer is lost
    _, token = bot.command(f"schedule telnyx +15551230001 at {iso_in(timedelta(hours=3))} Doors open at 10")
    reply = reply_text(bot.final_reply(token))
    assert "Unknown, checking" in reply and "Not scheduled" not in reply, reply
    assert "same idempotency key" in reply
    assert len(telnyx.messages) == 1  # three attempts, one message at Telnyx
    assert rows(bot, LedgerEntry) == [] and rows(bot, TrackedSend) == []  # nothing claimed either way
    assert [i.operation for i in rows(bot, Intent) if i.finished_at is None] == ["schedule"]
    bot.stop()

    telnyx.server.faults.clear()
    after = make_bot(reconcile_after=timedelta(0))  # a restart: reconciliation asks Telnyx again
    [send] = rows(after, TrackedSend)
    assert list(telnyx.messages) == [send.target]  # answered from the first, not scheduled twice
    assert send.state == "scheduled" and send.send_at is not None
    [entry] = rows(after, LedgerEntry)
    assert (entry.action, entry.actor, entry.target) == ("scheduled", "system", send.target)
    assert all(i.finished_at is not None for i in rows(after, Intent))
    posted = " ".join(m.text or "" for m in after.slack.channel_messages("C0OPS0001"))
    assert "After checking" in posted and send.target in posted
    assert telnyx.spec_violations == []


def test_a_highlevel_timeout_tells_the_user_to_check_and_never_says_not_scheduled(make_bot, highlevel):
    bot = make_bot(provider_read_timeout=0.5)
    highlevel.server.faults.latency(1.0, method="POST")
    _, token = bot.command(f"schedule highlevel cT9kQ2mN4pR6sV8xZ1aB at {iso_in(timedelta(hours=3))} hi")
    reply = reply_text(bot.final_reply(token))
    assert "Unknown, checking" in reply and "Not scheduled" not in reply, reply
    assert "check its console" in reply
    assert len(highlevel.server.requests_to("POST")) == 1  # not repeated: it could send twice
    bot.stop()

    after = make_bot(reconcile_after=timedelta(0))
    [entry] = rows(after, LedgerEntry)
    assert entry.outcome == "error" and entry.detail.startswith("outcome unknown")
    posted = " ".join(m.text or "" for m in after.slack.channel_messages("C0OPS0001"))
    assert "is still unknown" in posted


def test_tracking_a_message_whose_get_shows_no_send_time_follows_it_and_says_what_that_means(bot, telnyx,
                                                                                             highlevel):
    """Telnyx's and HighLevel's GET list no send time: the message is followed all the same, and the
    answer says the time is unknown, that no reminders come until it is known, and (Telnyx) that the
    bot's one-minute guard cannot be applied."""
    telnyx_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=3))
    highlevel_id = highlevel.add_message(scheduled_at=datetime.now(UTC) + timedelta(hours=3))
    _, t1 = bot.command(f"track telnyx {telnyx_id}")
    telnyx_reply = reply_text(bot.final_reply(t1))
    _, t2 = bot.command(f"track highlevel {highlevel_id}")
    highlevel_reply = reply_text(bot.final_reply(t2))

    assert "Following Telnyx" in telnyx_reply and "send time is unknown" in telnyx_reply, telnyx_reply
    assert "No reminders until the send time is known" in telnyx_reply
    assert "one-minute cancel guard" in telnyx_reply and "Telnyx's own refusal" in telnyx_reply
    assert "Following HighLevel" in highlevel_reply and "send time is unknown" in highlevel_reply
    assert "No reminders until the send time is known" in highlevel_reply
    assert "one-minute" not in highlevel_reply
    sends = {s.target: s for s in rows(bot, TrackedSend)}
    assert sends.keys() == {telnyx_id, highlevel_id}
    assert all(s.send_at is None and s.state == "scheduled" for s in sends.values())
    assert bot.services.reminders.scheduler.get_jobs() == []  # nothing planned from a time not known
    assert bot.services.reminders.sweep() == 0  # nor by the catch-up sweep
    assert [e.action for e in rows(bot, LedgerEntry)] == ["tracked", "tracked"]

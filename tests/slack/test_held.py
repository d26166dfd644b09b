"""Sends held by the bot beyond the provider's window (issue 14.4): accepted, listed, cancelled with no
provider call, and handed to the provider exactly once when inside its window, across a restart and
across two replicas."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.domain.clock import FrozenClock
from bot.sandbox.harness import BotHarness, buttons, reply_text
from bot.sandbox.slack import FakeSlack
from bot.sandbox.telnyx import FakeTelnyx
from bot.slack.ids import ActionId
from db.models import LedgerEntry, TrackedSend
from tests.conftest import provider_settings

START = datetime.now(UTC).replace(microsecond=0)
SEND_AT = START + timedelta(days=6)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def telnyx_on_clock(clock: FrozenClock) -> Iterator[FakeTelnyx]:
    """The fake Telnyx judges its 5-day window on the test's clock, as the real one does on real time."""
    fake = FakeTelnyx(now=clock.now).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def start_bot(slack: FakeSlack, telnyx_on_clock: FakeTelnyx, solapi, highlevel, clock: FrozenClock,
              sqlite_url: str) -> Iterator[object]:
    started: list[BotHarness] = []

    def start(database_url: str = sqlite_url) -> BotHarness:
        harness = BotHarness(slack, database_url, clock=clock, held_poll_seconds=0.2,
                             **provider_settings(telnyx_on_clock, solapi, highlevel)).start()
        started.append(harness)
        return harness

    yield start
    for harness in started:
        harness.stop()


def ledger(bot: BotHarness) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def tracked(bot: BotHarness) -> list[TrackedSend]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(TrackedSend).order_by(TrackedSend.created_at)))


def schedule_posts(telnyx: FakeTelnyx) -> list[object]:
    return [r for r in telnyx.server.requests if r.method == "POST" and r.path.endswith("/messages/schedule")]


def hold_one(bot: BotHarness) -> TrackedSend:
    _, token = bot.command(f"schedule telnyx +15551230001 at {SEND_AT.isoformat()} See you next week")
    reply = reply_text(bot.final_reply(token))
    assert "held by the bot" in reply and "handed to Telnyx on" in reply, reply
    [send] = tracked(bot)
    assert send.state == "held" and send.target.startswith("held-")
    return send


def test_a_send_beyond_telnyx_window_is_held_then_submitted_once_after_a_restart(
        start_bot, telnyx_on_clock: FakeTelnyx, clock: FrozenClock, slack: FakeSlack) -> None:
    first = start_bot()
    held = hold_one(first)
    assert schedule_posts(telnyx_on_clock) == []  # nothing at Telnyx yet
    _, token = first.command("list")
    assert "held" in reply_text(first.final_reply(token))
    _, token = first.command(f"status {held.target}")
    status = reply_text(first.final_reply(token))
    assert "`held` by the bot" in status and "Handed to Telnyx on" in status, status
    first.stop()

    clock.advance(timedelta(days=2, minutes=1))  # now 3 days 23 hours before the send: inside the window
    second = start_bot()
    slack.wait_for(lambda: schedule_posts(telnyx_on_clock), 10)
    second.slack.wait_for(lambda: [s for s in tracked(second) if s.state == "scheduled"], 10)
    assert len(schedule_posts(telnyx_on_clock)) == 1
    sends = {s.target: s for s in tracked(second)}
    assert sends[held.target].state == "submitted"
    [message] = [s for s in sends.values() if s.state == "scheduled"]
    assert telnyx_on_clock.messages[message.target]["text"] == "See you next week"
    assert message.batch_id == held.batch_id and message.created_by == "U0ALICE01"
    entries = [(e.action, e.actor, e.target) for e in ledger(second)]
    assert entries == [("scheduled", "U0ALICE01", held.target), ("scheduled", "system", message.target)]
    # the channel notice now names Telnyx's id, and its Cancel button reaches the submitted message
    notice = slack.channel_messages("C0OPS0001")[0]
    slack.wait_for(lambda: message.target in reply_text({"blocks": notice.blocks}), 5)
    [cancel] = [b for b in buttons(notice.blocks) if b["action_id"] == ActionId.CANCEL_BATCH]
    _, click = second.click(cancel["action_id"], cancel["value"], message_ts=notice.ts)
    assert "Cancelled Telnyx" in reply_text(second.final_reply(click))
    assert telnyx_on_clock.status_of(message.target) == "cancelled"


def test_a_held_send_is_cancelled_with_no_provider_call(start_bot, telnyx_on_clock: FakeTelnyx,
                                                        clock: FrozenClock) -> None:
    bot = start_bot()
    held = hold_one(bot)
    _, token = bot.command(f"cancel {held.target}")
    assert "held by the bot, so nothing had reached Telnyx" in reply_text(bot.final_reply(token))
    clock.advance(timedelta(days=3))
    _, token = bot.command("list")  # a full request round trip: the submission loop has had passes meanwhile
    bot.final_reply(token)
    assert telnyx_on_clock.server.requests == []
    assert [(e.action, e.actor) for e in ledger(bot)] == [("scheduled", "U0ALICE01"), ("cancelled", "U0ALICE01")]
    assert [s.state for s in tracked(bot)] == ["cancelled"]


def test_a_held_send_that_can_no_longer_be_submitted_is_refused_recorded_and_posted(
        start_bot, telnyx_on_clock: FakeTelnyx, clock: FrozenClock, slack: FakeSlack) -> None:
    first = start_bot()
    held = hold_one(first)
    first.stop()
    clock.advance(timedelta(days=6) - timedelta(minutes=2))  # the bot was down until 2 minutes before the send
    second = start_bot()
    posted = slack.wait_for(lambda: [m for m in slack.channel_messages("C0OPS0001") if "not handed" in m.text], 10)
    assert "5 minutes to 5 days ahead" in posted[0].text
    assert schedule_posts(telnyx_on_clock) == []
    last = ledger(second)[-1]
    assert (last.action, last.outcome, last.target) == ("refused", "refused", held.target)
    assert "provider window" in last.detail
    assert [s.state for s in tracked(second)] == ["failed"]


def test_two_replicas_on_postgresql_submit_a_held_send_exactly_once(
        start_bot, telnyx_on_clock: FakeTelnyx, clock: FrozenClock, slack: FakeSlack, pg_url: str) -> None:
    one, two = start_bot(pg_url), start_bot(pg_url)
    held = hold_one(one)
    clock.advance(timedelta(days=2, minutes=1))
    slack.wait_for(lambda: [s for s in tracked(two) if s.state == "scheduled"], 10)
    # both replicas keep polling: give each several more passes, then count the provider calls
    for bot in (one, two):
        for _ in range(3):
            _, token = bot.command("list")
            bot.final_reply(token)
    assert len(schedule_posts(telnyx_on_clock)) == 1
    states = sorted((s.target == held.target, s.state) for s in tracked(one))
    assert states == [(False, "scheduled"), (True, "submitted")]
    assert [e.action for e in ledger(one)].count("scheduled") == 2

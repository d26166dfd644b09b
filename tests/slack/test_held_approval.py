"""Approval rules (issue 15.1): a schedule a rule of SMS_POLICY_FILE matches is held by the bot, posted with
Approve / Reject, and created at the provider exactly once when every matching rule has its quorum; a user
group's membership is judged at the click; Reject closes it and an unapproved hold expires after
APPROVAL_TTL. All through signed Slack requests against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bot.domain.clock import FrozenClock
from bot.sandbox.harness import BotHarness, buttons, reply_text
from bot.sandbox.slack import FakeSlack, PostedMessage
from bot.sandbox.telnyx import FakeTelnyx
from db.models import LedgerEntry, TrackedSend
from tests.conftest import provider_settings

START = datetime.now(UTC).replace(microsecond=0)
SEND_AT = START + timedelta(days=1)
ALICE, BOB, CAROL, DAVE, ERIN = "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0DAVE001", "U0ERIN001"
RULES = """
[[rule]]
name = "telnyx sends"
providers = ["telnyx"]
approvers = ["@sms-leads"]
quorum = 2

[[rule]]
name = "large twilio sends"
providers = ["twilio"]
recipients_over = 100
approvers = ["U0ZED0001"]
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def telnyx_on_clock(clock: FrozenClock) -> Iterator[FakeTelnyx]:
    fake = FakeTelnyx(now=clock.now).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def rules_file(tmp_path: Path) -> str:
    path = tmp_path / "sms-policy.toml"
    path.write_text(RULES, encoding="utf-8")
    return str(path)


@pytest.fixture
def start_bot(slack: FakeSlack, telnyx_on_clock: FakeTelnyx, solapi, highlevel, clock: FrozenClock,
              sqlite_url: str, rules_file: str) -> Iterator[object]:
    started: list[BotHarness] = []

    def start(database_url: str = sqlite_url, **settings: object) -> BotHarness:
        values: dict[str, object] = {"held_poll_seconds": 0.2, "sms_policy_file": rules_file,
                                     "sms_admins": ALICE}
        values.update(settings)
        harness = BotHarness(slack, database_url, clock=clock,
                             **provider_settings(telnyx_on_clock, solapi, highlevel), **values).start()
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


def ask(bot: BotHarness, slack: FakeSlack) -> tuple[TrackedSend, PostedMessage]:
    _, token = bot.command(f"schedule telnyx +15551230001 at {SEND_AT.isoformat()} Doors open at nine")
    reply = reply_text(bot.final_reply(token))
    assert "Held for approval" in reply and "“telnyx sends” needs 2 approval(s) from @sms-leads" in reply, reply
    [send] = tracked(bot)
    assert send.state == "held"
    [card] = slack.channel_messages("C0OPS0001")
    return send, card


def click(bot: BotHarness, card: PostedMessage, label: str, user: str) -> str:
    [button] = [b for b in buttons(card.blocks) if b["text"]["text"] == label]
    _, token = bot.click(button["action_id"], button["value"], user=user, message_ts=card.ts)
    return reply_text(bot.final_reply(token))


def test_quorum_of_two_five_concurrent_clicks_from_three_users_make_one_provider_call(
        any_db_url: str, start_bot, slack: FakeSlack, telnyx_on_clock: FakeTelnyx) -> None:
    slack.set_usergroup("sms-leads", [BOB, CAROL, DAVE])
    bot = start_bot(any_db_url)
    send, card = ask(bot, slack)
    labels = [b["text"]["text"] for b in buttons(card.blocks)]
    assert labels == ["Approve", "Reject"]
    approve = buttons(card.blocks)[0]
    assert "“telnyx sends” needs 2 approval(s) from @sms-leads" in approve["confirm"]["text"]["text"]
    assert "0 of 2 approval(s)" in reply_text({"blocks": card.blocks})
    assert schedule_posts(telnyx_on_clock) == []

    # the requester and someone outside the group are refused, and it is recorded with the rule
    assert "nobody approves their own send" in click(bot, card, "Approve", ALICE)
    assert "is not among its approvers (@sms-leads)" in click(bot, card, "Approve", ERIN)
    assert "Still needed" in click(bot, card, "Approve", BOB)
    assert schedule_posts(telnyx_on_clock) == []  # one approver of two: nothing at Telnyx
    slack.wait_for(lambda: "1 of 2 approval(s)" in reply_text({"blocks": card.blocks}), 5)

    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda user: click(bot, card, "Approve", user), [BOB, CAROL, DAVE, CAROL, BOB]))
    slack.wait_for(lambda: [s for s in tracked(bot) if s.state == "scheduled"], 10)
    assert len(schedule_posts(telnyx_on_clock)) == 1
    states = sorted((s.target == send.target, s.state) for s in tracked(bot))
    assert states == [(False, "scheduled"), (True, "submitted")]
    entries = ledger(bot)
    refused = [e.detail for e in entries if e.action == "refused"]
    assert len(refused) == 2 and all("approval refused by rule “telnyx sends”" in d for d in refused)
    approvals = [e.actor for e in entries if e.action == "approved" and e.actor != "system"]
    assert len(approvals) == len(set(approvals)) and {BOB, CAROL} <= set(approvals)
    assert [e.action for e in entries].count("scheduled") == 1  # the submission, once
    [message] = [s for s in tracked(bot) if s.state == "scheduled"]
    slack.wait_for(lambda: message.target in reply_text({"blocks": card.blocks}), 5)  # the card names it


def test_a_member_removed_from_the_group_before_approving_no_longer_counts(
        start_bot, slack: FakeSlack, telnyx_on_clock: FakeTelnyx, clock: FrozenClock) -> None:
    slack.set_usergroup("sms-leads", [BOB, CAROL])
    bot = start_bot()
    _, card = ask(bot, slack)
    assert "Still needed" in click(bot, card, "Approve", BOB)
    slack.set_usergroup("sms-leads", [BOB, DAVE])  # Carol leaves the group, Dave joins
    clock.advance(timedelta(seconds=61))  # past the bot's brief cache of the group
    assert "is not among its approvers" in click(bot, card, "Approve", CAROL)
    assert schedule_posts(telnyx_on_clock) == []
    assert "handed to Telnyx" in click(bot, card, "Approve", DAVE)
    assert len(schedule_posts(telnyx_on_clock)) == 1
    assert slack.calls_to("usergroups.list") and slack.calls_to("usergroups.users.list")


def test_reject_closes_it_and_nothing_is_sent(start_bot, slack: FakeSlack, telnyx_on_clock: FakeTelnyx) -> None:
    slack.set_usergroup("sms-leads", [BOB, CAROL])
    bot = start_bot()
    _, card = ask(bot, slack)
    assert "You can't reject" in click(bot, card, "Reject", ERIN)
    assert "Rejected Telnyx" in click(bot, card, "Reject", BOB)
    slack.wait_for(lambda: "Rejected by <@U0BOB0001>" in reply_text({"blocks": card.blocks}), 5)
    assert buttons(card.blocks) == []
    [approve] = [b for b in buttons(card.history[0]["blocks"]) if b["text"]["text"] == "Approve"]
    _, token = bot.click(approve["action_id"], approve["value"], user=CAROL, message_ts=card.ts)
    assert "was rejected; nothing was sent" in reply_text(bot.final_reply(token))
    assert telnyx_on_clock.server.requests == []
    assert [s.state for s in tracked(bot)] == ["rejected"]
    entries = [(e.action, e.actor) for e in ledger(bot)]
    assert entries[0] == ("approval_requested", ALICE) and entries[-1] == ("rejected", BOB)
    assert ("refused", ERIN) in entries


def test_an_unapproved_hold_expires_after_approval_ttl(start_bot, slack: FakeSlack, telnyx_on_clock: FakeTelnyx,
                                                      clock: FrozenClock) -> None:
    slack.set_usergroup("sms-leads", [BOB, CAROL])
    bot = start_bot(approval_ttl="1h")
    _, card = ask(bot, slack)
    clock.advance(timedelta(hours=1, seconds=1))
    slack.wait_for(lambda: "Expired at" in reply_text({"blocks": card.blocks}), 10)
    assert buttons(card.blocks) == []
    [approve] = [b for b in buttons(card.history[0]["blocks"]) if b["text"]["text"] == "Approve"]
    _, token = bot.click(approve["action_id"], approve["value"], user=BOB, message_ts=card.ts)
    assert "expired without its approvals" in reply_text(bot.final_reply(token))
    assert telnyx_on_clock.server.requests == []
    assert [s.state for s in tracked(bot)] == ["expired"]
    assert [(e.action, e.actor) for e in ledger(bot)][-1] == ("expired", "system")


def test_a_schedule_no_rule_matches_goes_straight_to_the_provider(start_bot, slack: FakeSlack,
                                                                 telnyx_on_clock: FakeTelnyx) -> None:
    bot = start_bot(sms_policy_file=None)
    _, token = bot.command(f"schedule telnyx +15551230001 at {SEND_AT.isoformat()} Doors open at nine")
    assert "Held for approval" not in reply_text(bot.final_reply(token))
    assert len(schedule_posts(telnyx_on_clock)) == 1


def test_an_opt_out_arriving_by_webhook_while_it_awaits_approval_stops_it_at_approval(
        start_bot, slack: FakeSlack, telnyx_on_clock: FakeTelnyx, clock: FrozenClock) -> None:
    import base64
    import json
    import uuid

    from nacl.signing import SigningKey

    key = SigningKey.generate()
    slack.set_usergroup("sms-leads", [BOB, CAROL])
    bot = start_bot(telnyx_public_key=base64.b64encode(key.verify_key.encode()).decode())
    send, card = ask(bot, slack)
    body = json.dumps({"data": {
        "event_type": "message.received", "id": str(uuid.uuid4()), "record_type": "event",
        "occurred_at": clock.now().isoformat(),
        "payload": {"id": str(uuid.uuid4()), "record_type": "message", "direction": "inbound", "type": "SMS",
                    "from": {"phone_number": "+15551230001", "carrier": "T-Mobile", "line_type": "Wireless"},
                    "to": [{"phone_number": "+18445550001", "status": "webhook_delivered"}], "text": "STOP"},
    }, "meta": {"attempt": 1, "delivered_to": "https://bot.example/webhooks/telnyx"}}).encode()
    stamp = str(int(clock.now().timestamp()))
    signature = base64.b64encode(key.sign(stamp.encode() + b"|" + body).signature).decode()
    answer = bot.http.post(f"{bot.url}/webhooks/telnyx", content=body, headers={
        "content-type": "application/json", "telnyx-signature-ed25519": signature, "telnyx-timestamp": stamp})
    assert answer.json() == {"recorded": "opted out"}

    click(bot, card, "Approve", BOB)
    click(bot, card, "Approve", CAROL)  # the quorum is met: the release is judged again, opt-outs included
    bot.slack.wait_for(lambda: [s for s in tracked(bot) if s.id == send.id and s.state == "failed"], 10)
    assert schedule_posts(telnyx_on_clock) == []  # nothing reached Telnyx
    refusal = [e for e in ledger(bot) if e.action == "refused" and e.target == send.target]
    assert refusal and "opted out while it waited (+15551230001)" in refusal[-1].detail

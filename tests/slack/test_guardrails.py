"""Guard rails on what leaves (issue 15), through signed Slack requests against the sandbox: quiet hours
in each recipient's zone (across a DST change, for a mixed-zone list), opt-outs (by a signed Telnyx
webhook and by admins), daily caps with an admin's override, help per role and /sms policy."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from nacl.signing import SigningKey
from sqlmodel import Session, col, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import LedgerEntry, OptOut, TrackedSend

ADMIN = "U0ADMIN01"
AUDITOR = "U0AUDIT01"
MEMBER = "U0ALICE01"
QUIET = "21:00-08:00"
# A number in each of four zones whose DST changes fall in different months, so that one of them
# changes within five months of any day (inside Solapi's six-month window).
DST_NUMBERS = {"America/New_York": "+12125550123", "Europe/London": "+442071234567",
               "Australia/Sydney": "+61291234567", "America/Santiago": "+56221234567"}


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq))))


def tracked(bot) -> list[TrackedSend]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(TrackedSend)))


def answer(bot, text: str, user: str = MEMBER) -> str:
    response, token = bot.command(text, user=user)
    ack = reply_text(response.json()) if response.content else ""
    if not ack.startswith("⏳"):
        return ack  # usage errors and help are answered in the ack
    return reply_text(bot.final_reply(token))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_text(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def next_dst_change(zone: str, after: date, within_days: int) -> date | None:
    tz = ZoneInfo(zone)
    for offset in range(within_days):
        day = after + timedelta(days=offset)
        noon = datetime.combine(day, clock_time(12), tzinfo=tz).utcoffset()
        if noon != datetime.combine(day + timedelta(days=1), clock_time(12), tzinfo=tz).utcoffset():
            return day + timedelta(days=1)  # the first day on the new offset
    return None


def test_quiet_hours_follow_the_recipients_zone_across_a_dst_change(make_bot, solapi):
    bot = make_bot(quiet_hours=QUIET)
    start = datetime.now(UTC).date() + timedelta(days=3)
    zone, changed = next((z, d) for z in DST_NUMBERS if (d := next_dst_change(z, start, 150)) is not None)
    tz, number = ZoneInfo(zone), DST_NUMBERS[zone]
    offsets = set()
    for day in (changed - timedelta(days=2), changed + timedelta(days=1)):  # before and after the change
        asked = datetime.combine(day, clock_time(7, 30), tzinfo=tz)  # 07:30 there: still quiet
        offsets.add(asked.utcoffset())
        text = answer(bot, f"schedule solapi {number} at {iso(asked)} Doors open at 10")
        first = datetime.combine(day, clock_time(8, 0), tzinfo=tz)
        assert "Not scheduled" in text and f"07:30 in {zone}" in text, text
        assert f"first time outside quiet hours for everyone is {utc_text(first)}" in text, text
    assert len(offsets) == 2, "the two days are on different UTC offsets"
    # the time offered after the change is taken
    first = datetime.combine(changed + timedelta(days=1), clock_time(8, 0), tzinfo=tz)
    assert "Scheduled with Solapi" in answer(bot, f"schedule solapi {number} at {iso(first)} Doors open at 10")
    refused = [e for e in ledger(bot) if e.action == "refused"]
    assert len(refused) == 2 and all("schedule refused by quiet hours (QUIET_HOURS)" in e.detail for e in refused)
    assert len(tracked(bot)) == 1


def test_the_strictest_zone_of_a_mixed_list_wins_and_only_an_admin_may_override(make_bot, solapi):
    bot = make_bot(quiet_hours=QUIET, sms_admins=ADMIN)
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    asked = datetime.combine(tomorrow, clock_time(3, 0), tzinfo=UTC)  # noon in Seoul, night in New York
    to = "+821012345678,+12125550123"
    text = answer(bot, f"schedule solapi {to} at {iso(asked)} Sale starts")
    assert "1 recipient(s) would get it in quiet hours" in text and "in America/New_York" in text, text
    assert "Asia/Seoul" not in text.split("quiet hours (")[1].split(";")[0]
    # New York wakes at 13:00 UTC, when Seoul is already quiet: the first time for both is Seoul's 08:00
    assert f"for everyone is {utc_text(datetime.combine(tomorrow, clock_time(23, 0), tzinfo=UTC))}" in text, text

    member = answer(bot, f"schedule --override solapi {to} at {iso(asked)} Sale starts")
    assert "only admins (SMS_ADMINS) may override quiet hours" in member, member
    admin = answer(bot, f"schedule --override solapi {to} at {iso(asked)} Sale starts", user=ADMIN)
    assert "Scheduled with Solapi" in admin, admin
    entries = [(e.actor, e.action, e.outcome) for e in ledger(bot)]
    assert entries == [(MEMBER, "refused", "refused"), (MEMBER, "refused", "refused"),
                       (ADMIN, "overridden", "ok"), (ADMIN, "scheduled", "ok")]
    assert "refused by override" in ledger(bot)[1].detail
    assert "let past quiet hours (QUIET_HOURS) by --override" in ledger(bot)[2].detail
    assert len(tracked(bot)) == 1


KEY = SigningKey.generate()


def inbound(bot, sender: str, text: str):
    """A Telnyx message.received event, signed as Telnyx signs it (ed25519 over `timestamp|body`)."""
    body = json.dumps({"data": {
        "event_type": "message.received", "id": str(uuid.uuid4()), "record_type": "event",
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {"id": str(uuid.uuid4()), "record_type": "message", "direction": "inbound", "type": "SMS",
                    "from": {"phone_number": sender, "carrier": "T-Mobile", "line_type": "Wireless"},
                    "to": [{"phone_number": "+18445550001", "status": "webhook_delivered"}], "text": text},
    }, "meta": {"attempt": 1, "delivered_to": "https://bot.example/webhooks/telnyx"}}).encode()
    stamp = str(int(time.time()))
    signature = base64.b64encode(KEY.sign(stamp.encode() + b"|" + body).signature).decode()
    return bot.http.post(f"{bot.url}/webhooks/telnyx", content=body, headers={
        "content-type": "application/json", "telnyx-signature-ed25519": signature, "telnyx-timestamp": stamp})


def test_a_stop_by_webhook_makes_schedules_refuse_the_number_until_start(make_bot, telnyx):
    bot = make_bot(telnyx_public_key=base64.b64encode(KEY.verify_key.encode()).decode(), sms_admins=ADMIN)
    assert inbound(bot, "+15551230001", "Stop").json() == {"recorded": "opted out"}
    assert inbound(bot, "+15551230009", "see you at 10").json() == {"ignored": "message.received"}
    when = iso(datetime.now(UTC) + timedelta(hours=2))
    text = answer(bot, f"schedule telnyx +15551230002,+15551230001 at {when} Doors open")
    assert "Not scheduled: 1 of 2 recipient(s) opted out" in text and "+15551230001" in text, text
    assert "+15551230002" not in text
    assert not telnyx.server.requests_to("POST", "/messages")
    # not even an admin's override passes an opt-out
    text = answer(bot, f"schedule --override telnyx +15551230001 at {when} Doors open", user=ADMIN)
    assert "opted out" in text, text
    opt = [(e.actor, e.action, e.target) for e in ledger(bot) if e.action in ("opted_out", "refused")]
    assert opt == [("system", "opted_out", "+15551230001"), (MEMBER, "refused", None), (ADMIN, "refused", None)]
    assert all("refused by opt-out" in e.detail for e in ledger(bot) if e.action == "refused")

    assert inbound(bot, "+15551230001", "UNSTOP").json() == {"recorded": "opted in"}
    assert "Scheduled with Telnyx" in answer(bot, f"schedule telnyx +15551230001 at {when} Doors open")


def test_admins_edit_the_opt_out_list_and_a_removal_needs_a_reason(make_bot):
    bot = make_bot(sms_admins=ADMIN)
    assert "Only admins (SMS_ADMINS)" in answer(bot, "optout add +15551230005")
    assert "is on the opt-out list" in answer(bot, "optout add +15551230005", user=ADMIN)
    assert "say why" in answer(bot, "optout remove +15551230005", user=ADMIN)
    listed = answer(bot, "optout list", user=ADMIN)
    assert "1 number(s) on the opt-out list" in listed and "+15551230005" in listed and f"<@{ADMIN}>" in listed
    assert "is off the opt-out list" in answer(bot, "optout remove +15551230005 asked again by phone", user=ADMIN)
    with Session(bot.services.engine) as session:
        assert list(session.exec(select(OptOut))) == []
    entries = [(e.actor, e.action, e.detail) for e in ledger(bot)]
    assert entries[0][:2] == (MEMBER, "refused") and "admins only" in entries[0][2]
    assert entries[1][:2] == (ADMIN, "opted_out")
    assert entries[2] == (ADMIN, "opted_in", "removed from the opt-out list: asked again by phone")


def test_a_daily_cap_refuses_with_used_and_left_and_an_admin_may_override(make_bot, telnyx):
    bot = make_bot(daily_limit_telnyx=3, sms_admins=ADMIN)
    day = datetime.now(UTC).date() + timedelta(days=1)
    at = [iso(datetime.combine(day, clock_time(h), tzinfo=UTC)) for h in (10, 11, 12)]
    assert "Scheduled" in answer(bot, f"schedule telnyx +15551230001,+15551230002 at {at[0]} One")
    text = answer(bot, f"schedule telnyx +15551230003,+15551230004 at {at[1]} Two")
    assert "Telnyx may send to 3 recipient(s) a day" in text and "2 are used and 1 left" in text, text
    assert "Scheduled" in answer(bot, f"schedule telnyx +15551230003 at {at[1]} Two")
    # another day is counted apart
    other = iso(datetime.combine(day + timedelta(days=1), clock_time(10), tzinfo=UTC))
    assert "Scheduled" in answer(bot, f"schedule telnyx +15551230004,+15551230005 at {other} Three")
    assert "add `--override`" in answer(bot, f"schedule telnyx +15551230006 at {at[2]} Four", user=ADMIN)
    assert "Scheduled" in answer(bot, f"schedule --override telnyx +15551230006 at {at[2]} Four", user=ADMIN)
    refused = [e.detail for e in ledger(bot) if e.action == "refused"]
    assert len(refused) == 2 and all("refused by daily limit (DAILY_LIMIT_TELNYX)" in d for d in refused)
    [override] = [e for e in ledger(bot) if e.action == "overridden"]
    assert override.actor == ADMIN and "3 are used and 0 left" in override.detail
    assert sum(s.recipient_count for s in tracked(bot)) == 6  # Telnyx: one message per recipient


def test_help_shows_only_what_the_invoker_may_do(make_bot):
    bot = make_bot(sms_admins=ADMIN, sms_auditors=AUDITOR)
    admin, auditor, member = (answer(bot, "help", user=u) for u in (ADMIN, AUDITOR, MEMBER))
    assert "/sms optout" in admin and "--override" in admin and "/sms audit [<id>|<@user>" in admin
    assert "/sms optout" not in auditor and "--override" not in auditor and "/sms audit [<id>|<@user>" in auditor
    assert "/sms optout" not in member and "--override" not in member and "<@user>" not in member
    assert "(your own actions)" in member and "/sms policy" in member


def test_policy_says_the_rules_in_force(make_bot):
    bot = make_bot(quiet_hours=QUIET, daily_limit_telnyx=5000, daily_limit_tz="Asia/Seoul", sms_admins=ADMIN)
    assert "is on the opt-out list" in answer(bot, "optout add +15551230005", user=ADMIN)
    text = answer(bot, "policy")
    assert f"Quiet hours*: {QUIET} in each recipient's own time zone" in text, text
    assert "recipients per Asia/Seoul day" in text and "Telnyx 5,000" in text
    assert "1 number(s) must not be messaged" in text
    assert f"<@{ADMIN}>" in text and "cancel only what they scheduled" in text
    assert "refused within 60s" in text


def test_a_solapi_group_sent_by_approval_counts_in_that_days_cap(make_bot, solapi):
    # a limits zone where it is about 10:00 now, so that "in 2h" falls on the same limits day
    offset = (10 - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset
    zone = "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"
    bot = make_bot(daily_limit_solapi=3, daily_limit_tz=zone)
    group_id = solapi.add_group(status="PENDING", recipients=["01011112222", "01033334444"])
    assert "Asked for approval" in answer(bot, f"send {group_id}")
    card = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)[-1]
    approve = {b["action_id"]: b for b in buttons(card.blocks)}[ActionId.APPROVE]
    _, token = bot.click(approve["action_id"], approve["value"], user="U0BOB0001")
    assert "Sent Solapi" in reply_text(bot.final_reply(token))
    # the group's two recipients went out today: one place is left
    text = answer(bot, "schedule solapi 010-5555-0001,010-5555-0002 in 2h Later today")
    assert "2 are used and 1 left" in text, text
    assert "Scheduled with Solapi" in answer(bot, "schedule solapi 010-5555-0001 in 2h Later today")
    [sent] = [s for s in tracked(bot) if s.target == group_id]
    assert sent.state in ("sending", "sent") and sent.send_at is not None  # counted by the day it went out

"""The /sms grammar: every verb parses, and every mistake gets a message that names it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain import commands
from bot.domain.commands import UsageError, parse
from bot.providers.base import ProviderName

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_empty_text_is_help():
    assert parse("", NOW) == commands.Help()
    assert parse("help cancel", NOW) == commands.Help("cancel")


def test_schedule_absolute_and_relative():
    cmd = parse("schedule telnyx +15551230001,+15551230002 at 2026-11-24T09:00+09:00 Doors open", NOW)
    assert cmd == commands.Schedule(ProviderName.TELNYX, ("+15551230001", "+15551230002"),
                                    datetime(2026, 11, 24, 0, 0, tzinfo=UTC), "Doors open")
    assert parse("schedule coolsms +821012345678 in 45m 안녕", NOW).send_at == NOW + timedelta(minutes=45)
    assert parse("schedule solapi +821012345678 at in 2h 안녕", NOW).send_at == NOW + timedelta(hours=2)
    assert parse("schedule highlevel ve9EPM428h8vShlRW1KT at 2026-11-23T13:00Z hi", NOW).to == (
        "ve9EPM428h8vShlRW1KT",)


@pytest.mark.parametrize("text,message", [
    ("schedule telnyx +15551230001 at 2026-11-23T11:00Z hi", "in the past"),
    ("schedule telnyx +15551230001 at tomorrow hi", "has no time of day"),
    ("schedule telnyx +15551230001 at 03/04 9am hi", "can be read two ways"),
    ("schedule telnyx +15551230001 at soonish hi", "is not a time"),
    ("schedule telnyx 12345 in 1h hi", "`12345` is not a phone number the bot can send to"),
    ("schedule telnyx +15551230001,+15551230001 in 1h hi", "listed twice"),
    ("schedule telnyx +15551230001 in 1h", "text is empty"),
    ("schedule telnyx +15551230001 in 1h " + "x" * 1531, "Telnyx sends at most 10 parts"),
    ("schedule pigeon +15551230001 in 1h hi", "not a provider"),
    ("schedule highlevel +15551230001 in 1h hi", "not a HighLevel contact id"),
    ("schedule telnyx +15551230001 tomorrow hi", "`at <time>` or `in <duration>`"),
    ("frobnicate", "not an /sms command"),
    ("cancel", "needs an id"),
    ("cancel all", "cancel all mine"),
    ("status a b", "exactly one id"),
    ("list everything", "`mine` or `all`"),
    ("audit limit 0", "from 1 to 1000"),
    ("audit limit 99999999999", "from 1 to 1000"),
    ("audit since yesterday-ish", "is not a time"),
    ("audit since 2026-11-30", "in the future"),
    ("cancel \x00abc", "control characters"),
    ("cancel twilio:SM123", "not a Twilio message SID"),
    ("schedule twilio 5551230001 in 1h hi", "E.164"),
])
def test_mistakes_are_named(text, message):
    with pytest.raises(UsageError) as caught:
        parse(text, NOW)
    assert message in caught.value.message


def test_times_without_an_offset_are_read_in_the_writers_zone():
    seoul = ZoneInfo("Asia/Seoul")
    cmd = parse("schedule telnyx +15551230001 at 2026-11-24T09:00 hi", NOW, seoul)
    assert cmd.send_at == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    cmd = parse("schedule solapi +821012345678 at 내일 오전 9시 안녕하세요", NOW, seoul)
    assert (cmd.send_at, cmd.text) == (datetime(2026, 11, 24, 0, 0, tzinfo=UTC), "안녕하세요")
    assert parse("schedule telnyx +15551230001 at tomorrow 9am hi", NOW).send_at == datetime(
        2026, 11, 24, 9, 0, tzinfo=UTC)  # no zone known: UTC


def test_ids_by_prefix_and_by_shape():
    uuid = "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e"
    assert parse(f"cancel {uuid}", NOW).targets[0].provider is ProviderName.TELNYX
    assert parse("cancel G4V20181005162502HEA0ZB9AQOUMSE1", NOW).targets[0].provider is ProviderName.SOLAPI
    assert parse("cancel ve9EPM428h8vShlRW1KT", NOW).targets[0].provider is ProviderName.HIGHLEVEL
    assert parse("cancel abc", NOW).targets[0].provider is None
    assert parse("cancel SM1f0e8ae6ade43cb3c0ce4525424e404f", NOW).targets[0].provider is ProviderName.TWILIO
    assert parse("cancel MM1f0e8ae6ade43cb3c0ce4525424e404f", NOW).targets[0].provider is ProviderName.TWILIO
    assert parse("cancel twilio:SM1f0e8ae6ade43cb3c0ce4525424e404f", NOW).targets[0].explicit
    assert parse("cancel SM1f0e8ae6ade43cb3c0ce4525424e404", NOW).targets[0].provider is None  # 31 hex
    assert parse("cancel coolsms:G4V20181005162502HEA0ZB9AQOUMSE1", NOW).targets[0].explicit
    cmd = parse(f"cancel {uuid} G4V20181005162502HEA0ZB9AQOUMSE1", NOW)
    assert len(cmd.targets) == 2


def test_audit_filters_combine():
    cmd = parse("audit <@U012AB3CD|alice> telnyx since 7d limit 5", NOW)
    assert cmd == commands.Audit(None, "U012AB3CD", ProviderName.TELNYX, NOW - timedelta(days=7), 5)
    assert parse("audit <@U012AB3CD>", NOW).actor == "U012AB3CD"
    assert parse("audit since 2026-11-01", NOW).since == datetime(2026, 11, 1, tzinfo=UTC)


def test_cancel_all_mine():
    assert parse("cancel all mine", NOW) == commands.CancelMine()
    assert parse("cancel all mine since 2h", NOW) == commands.CancelMine(NOW - timedelta(hours=2))

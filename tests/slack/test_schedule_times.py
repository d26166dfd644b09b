"""Send times as people write them, read in the writer's Slack time zone, through signed slash commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.sandbox.harness import reply_text
from db.models import LedgerEntry, TrackedSend


def tracked(bot) -> list[TrackedSend]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(TrackedSend)))


def tomorrow_at(zone: str, hour: int) -> datetime:
    local = datetime.now(ZoneInfo(zone)) + timedelta(days=1)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0).astimezone(UTC)


def test_tomorrow_9am_is_9am_where_the_writer_is(bot, slack, telnyx):
    slack.user_tz["U0ALICE01"] = "Asia/Seoul"
    slack.user_tz["U0BOB0001"] = "America/New_York"
    _, seoul = bot.command("schedule telnyx +15551230001 at tomorrow 9am Doors open", user="U0ALICE01")
    assert "Scheduled with" in reply_text(bot.final_reply(seoul))
    _, new_york = bot.command("schedule telnyx +15551230002 at tomorrow 9am Doors open", user="U0BOB0001")
    assert "Scheduled with" in reply_text(bot.final_reply(new_york))
    by_writer = {s.created_by: s for s in tracked(bot)}
    for user, zone in (("U0ALICE01", "Asia/Seoul"), ("U0BOB0001", "America/New_York")):
        send = by_writer[user]
        assert send.send_at.replace(tzinfo=UTC) == tomorrow_at(zone, 9)
        # what Telnyx was asked for is that instant, and the text is only the text
        assert telnyx.send_at_of(send.target) == tomorrow_at(zone, 9)
        assert telnyx.messages[send.target]["text"] == "Doors open"


def test_korean_phrasing_is_read_for_solapi_teams(bot, slack, solapi):
    slack.user_tz["U0ALICE01"] = "Asia/Seoul"
    _, token = bot.command("schedule solapi +821012345678 at 내일 오전 9시 문이 열립니다")
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    [send] = tracked(bot)
    assert send.send_at.replace(tzinfo=UTC) == tomorrow_at("Asia/Seoul", 9)
    assert [m["text"] for m in solapi.messages_of(send.target)] == ["문이 열립니다"]


def test_an_ambiguous_date_is_refused_with_both_readings_and_nothing_is_sent(bot, slack, telnyx):
    slack.user_tz["U0ALICE01"] = "Europe/Berlin"
    response, _ = bot.command("schedule telnyx +15551230001 at 03/04 9am Hi")
    text = reply_text(response.json())
    assert "can be read two ways" in text and " or " in text and "UTC" in text, text
    assert telnyx.messages == {}
    with Session(bot.services.engine) as session:
        assert not list(session.exec(select(LedgerEntry).where(LedgerEntry.action == "scheduled")))


def test_an_unknown_zone_falls_back_to_default_tz(make_bot, slack, telnyx):
    bot = make_bot(default_tz="Asia/Seoul")  # Slack says nothing about this user's zone
    slack.user_tz["U0ALICE01"] = ""
    _, token = bot.command("schedule telnyx +15551230001 at tomorrow 9am Hi")
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    [send] = tracked(bot)
    assert send.send_at.replace(tzinfo=UTC) == tomorrow_at("Asia/Seoul", 9)

"""Quiet hours are judged where each recipient is, across DST changes and mixed-zone lists."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.quiet_hours import QuietHours, check, zones_of

QUIET = QuietHours.parse("21:00-08:00")
NEW_YORK = "+12125551234"
LOS_ANGELES = "+13105551234"
SEOUL = "+821012345678"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_the_range_is_read_and_checked() -> None:
    assert QuietHours.parse("") is None and QuietHours.parse("off") is None
    assert str(QuietHours.parse("9:30-07:00")) == "09:30-07:00"
    for bad, says in (("21-8", "range of times"), ("25:00-08:00", "does not exist"), ("08:00-08:00", "same time")):
        with pytest.raises(ValueError, match=says):
            QuietHours.parse(bad)


def test_zones_come_from_the_number() -> None:
    assert zones_of(SEOUL) == ("Asia/Seoul",)
    assert zones_of(NEW_YORK) == ("America/New_York",)
    assert zones_of("not a number") == ()


def test_a_send_at_night_where_the_recipient_is_is_refused_with_the_first_allowed_time() -> None:
    # 13:00 UTC is 22:00 in Seoul: inside; Seoul's quiet hours end at 08:00 KST = 23:00 UTC
    verdict = check(QUIET, utc(2026, 12, 3, 13, 0), [SEOUL])
    assert not verdict.allowed
    assert verdict.first_allowed == utc(2026, 12, 3, 23, 0)
    assert "22:00 in Asia/Seoul" in verdict.reason(QUIET)
    # the same instant is 08:00 in New York: allowed there
    assert check(QUIET, utc(2026, 12, 3, 13, 0), [NEW_YORK]).allowed


def test_a_mixed_zone_list_must_fit_everyone_the_strictest_wins() -> None:
    # 15:00 UTC: 10:00 New York, 07:00 Los Angeles (quiet), 00:00 Seoul (quiet)
    verdict = check(QUIET, utc(2026, 12, 3, 15, 0), [NEW_YORK, LOS_ANGELES])
    assert not verdict.allowed and [z for z, _ in verdict.inside] == ["America/Los_Angeles"]
    assert verdict.first_allowed == utc(2026, 12, 3, 16, 0)  # 08:00 in Los Angeles, 11:00 in New York
    # New York and Seoul are 14 hours apart: 21:00-08:00 leaves them 23:00-02:00 UTC in common
    assert check(QUIET, utc(2026, 12, 3, 15, 0), [NEW_YORK, SEOUL]).first_allowed == utc(2026, 12, 3, 23, 0)
    # with longer quiet hours (18:00-09:00) no time of day suits both: the answer says so
    long_quiet = QuietHours.parse("18:00-09:00")
    verdict = check(long_quiet, utc(2026, 12, 3, 15, 0), [NEW_YORK, SEOUL])
    assert verdict.first_allowed is None and "split the send" in verdict.reason(long_quiet)


def test_quiet_hours_follow_the_clock_across_a_dst_change() -> None:
    # New York moves to EDT on 14 March 2027: 12:30 UTC is 07:30 EST on the 13th (quiet), 08:30 EDT on the 15th
    assert not check(QUIET, utc(2027, 3, 13, 12, 30), [NEW_YORK]).allowed
    assert check(QUIET, utc(2027, 3, 15, 12, 30), [NEW_YORK]).allowed
    # on the night of the change, quiet hours end at 08:00 EDT = 12:00 UTC (not 13:00 as the night before)
    assert check(QUIET, utc(2027, 3, 14, 6, 0), [NEW_YORK]).first_allowed == utc(2027, 3, 14, 12, 0)


def test_without_quiet_hours_or_known_zones_nothing_is_refused() -> None:
    assert check(None, utc(2026, 12, 3, 13, 0), [SEOUL]).allowed
    assert check(QUIET, utc(2026, 12, 3, 13, 0), ["nonsense"]).allowed

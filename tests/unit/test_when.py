"""Send times as people write them: a table of inputs × zones × the instants they name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.when import WhenError, read_time, zone

# Thursday 3 December 2026, 13:00 in Seoul, 23:00 (Wednesday) in New York, 05:00 in Berlin.
NOW = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


CASES = [
    # (zone, what was typed, the instant meant, the text left over)
    ("Asia/Seoul", "tomorrow 9am Doors open", utc(2026, 12, 4, 0, 0), "Doors open"),
    ("America/New_York", "tomorrow 9am Doors open", utc(2026, 12, 3, 14, 0), "Doors open"),  # it is still Wed there
    ("Europe/Berlin", "tomorrow 9am Doors open", utc(2026, 12, 4, 8, 0), "Doors open"),
    ("Asia/Seoul", "9:30 hi", utc(2026, 12, 4, 0, 30), "hi"),  # 9:30 has passed today: tomorrow's
    ("Europe/Berlin", "9:30 hi", utc(2026, 12, 3, 8, 30), "hi"),  # 05:00 there: today's
    ("Asia/Seoul", "fri 14:00 Sale", utc(2026, 12, 4, 5, 0), "Sale"),
    ("America/New_York", "fri 14:00 Sale", utc(2026, 12, 4, 19, 0), "Sale"),
    ("Asia/Seoul", "24 dec 9am Merry", utc(2026, 12, 24, 0, 0), "Merry"),
    ("Asia/Seoul", "dec 24 9am Merry", utc(2026, 12, 24, 0, 0), "Merry"),
    ("America/New_York", "2026-12-24 09:00 Eve", utc(2026, 12, 24, 14, 0), "Eve"),  # no offset: the writer's zone
    ("America/New_York", "2026-12-24T09:00+09:00 Eve", utc(2026, 12, 24, 0, 0), "Eve"),  # an offset wins
    ("Asia/Seoul", "2026-12-24T09:00Z Eve", utc(2026, 12, 24, 9, 0), "Eve"),
    ("Asia/Seoul", "in 45m Soon", utc(2026, 12, 3, 4, 45), "Soon"),
    ("Asia/Seoul", "내일 오전 9시 안녕하세요", utc(2026, 12, 4, 0, 0), "안녕하세요"),
    ("Asia/Seoul", "내일 오후 3시 30분 회의", utc(2026, 12, 4, 6, 30), "회의"),
    ("Asia/Seoul", "내일 오후 3시 반 회의", utc(2026, 12, 4, 6, 30), "회의"),
    ("Asia/Seoul", "모레 오전 10시 공지", utc(2026, 12, 5, 1, 0), "공지"),
    ("Asia/Seoul", "12월 24일 오후 6시 파티", utc(2026, 12, 24, 9, 0), "파티"),
    ("Asia/Seoul", "noon Lunch", utc(2026, 12, 4, 3, 0), "Lunch"),
    ("Asia/Seoul", '"fri 9am" 3 seats left', utc(2026, 12, 4, 0, 0), "3 seats left"),
    ("Asia/Seoul", "9am 3 seats left", utc(2026, 12, 4, 0, 0), "3 seats left"),  # a bare number is text
    ("Asia/Seoul", "next monday 10am Standup", utc(2026, 12, 7, 1, 0), "Standup"),
    # DST: New York springs forward on 14 March 2027 (02:00 → 03:00) and falls back on 7 November 2027.
    ("America/New_York", "2027-03-13 09:00 before", utc(2027, 3, 13, 14, 0), "before"),
    ("America/New_York", "2027-03-15 09:00 after", utc(2027, 3, 15, 13, 0), "after"),
    ("America/New_York", "2027-11-07 03:00 after the fall", utc(2027, 11, 7, 8, 0), "after the fall"),
    ("Europe/Berlin", "2027-03-28 03:30 after the jump", utc(2027, 3, 28, 1, 30), "after the jump"),
]


@pytest.mark.parametrize(("tz", "typed", "meant", "rest"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_a_typed_time_names_the_instant_its_writer_meant(tz: str, typed: str, meant: datetime, rest: str) -> None:
    read = read_time(typed, NOW, zone(tz))
    assert read.at == meant, read.at.astimezone(zone(tz))
    assert read.rest == rest


def test_a_time_the_clocks_skip_is_refused_with_the_reason() -> None:
    with pytest.raises(WhenError, match="does not exist in America/New_York"):
        read_time("2027-03-14 02:30 hi", NOW, zone("America/New_York"))


def test_a_time_that_happens_twice_is_refused_with_both_readings() -> None:
    with pytest.raises(WhenError, match="happens twice") as caught:
        read_time("2027-11-07 01:30 hi", NOW, zone("America/New_York"))
    assert caught.value.readings == (utc(2027, 11, 7, 5, 30), utc(2027, 11, 7, 6, 30))


def test_day_and_month_that_can_swap_are_refused_with_both_readings() -> None:
    with pytest.raises(WhenError, match="two ways") as caught:
        read_time("03/04 9am hi", NOW, zone("Asia/Seoul"))
    assert caught.value.readings == (utc(2027, 3, 4, 0, 0), utc(2027, 4, 3, 0, 0))


def test_day_and_month_that_cannot_swap_are_read() -> None:
    assert read_time("12/24 9am hi", NOW, zone("Asia/Seoul")).at == utc(2026, 12, 24, 0, 0)


@pytest.mark.parametrize(("typed", "says"), [
    ("dec 24 Merry", "has no time of day"),
    ("banana 9am", "is not a time I can read"),
    ("in 5x hi", "is not a"),
    ("2026-02-30T09:00+09:00 hi", "is not a real date"),
])
def test_what_is_not_a_usable_time_is_refused_in_words(typed: str, says: str) -> None:
    with pytest.raises(WhenError, match=says):
        read_time(typed, NOW, zone("Asia/Seoul"))


def test_an_unknown_zone_falls_back_to_the_default() -> None:
    assert zone("Mars/Olympus", default="Asia/Seoul").key == "Asia/Seoul"
    assert zone(None).key == "UTC"


def test_text_after_an_iso_time_is_text_even_when_it_reads_like_a_time() -> None:
    read = read_time("2026-12-24T09:00+09:00 내일 10시에 문이 열립니다", NOW, zone("Asia/Seoul"))
    assert (read.at, read.rest) == (utc(2026, 12, 24, 0, 0), "내일 10시에 문이 열립니다")
    read = read_time("2026-12-24 09:00 tomorrow 9am we open", NOW, zone("Asia/Seoul"))
    assert (read.at, read.rest) == (utc(2026, 12, 24, 0, 0), "tomorrow 9am we open")

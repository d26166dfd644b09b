"""Send times as people write them, read in the writer's own time zone (pure).

`tomorrow 9am`, `9:30`, `fri 14:00`, `24 dec 9am`, `2026-12-24 09:00` (no offset: the writer's zone),
ISO-8601 with an offset, `in 45m`, and Korean phrasing (`내일 오전 9시`, `모레 오후 3시 30분`,
`12월 24일 오전 9시`). dateparser reads the words; this module decides what they mean:

- the future is preferred (`9:30` after 9:30 is tomorrow's), but a date without a time is refused
  (midnight is rarely what was meant);
- an ambiguous text is refused with both readings: `03/04` (3 April or 4 March) and a wall-clock time
  that happens twice when the clocks go back;
- a wall-clock time that does not exist (skipped when the clocks go forward) is refused;
- local times are turned into instants with zoneinfo, not dateparser's own localisation, so the DST
  rules are the zone database's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dateparser

from bot.domain.durations import parse_duration

MAX_PHRASE_WORDS = 6


class WhenError(ValueError):
    """A time that can't be used, with the reason in words (and the readings when it is ambiguous)."""

    def __init__(self, message: str, readings: tuple[datetime, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.readings = readings


def zone(name: str | None, default: str = "UTC") -> ZoneInfo:
    """The IANA zone `name`, or `default` when it is unset or unknown."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


# --- where the time ends and the text begins ---------------------------------------------------

_MONTHS = ("jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|january|february|march|april|june|july|"
           "august|september|october|november|december")
_DAYS = "mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun|monday|tuesday|wednesday|thursday|friday|saturday|sunday"
_WORDS = ("today|tonight|tomorrow|tmrw|next|this|noon|midnight|morning|afternoon|evening|am|pm|a\\.m\\.|p\\.m\\.|"
          "at|on|of|utc|gmt")
_KOREAN = (r"(오늘|내일|모레|글피|다음주|이번주|오전|오후|아침|저녁|밤|낮|정오|자정|[월화수목금토일]요일|"
           r"\d{1,4}(년|월|일|시|분|초)(반)?|반)")
_TIME_WORD = re.compile(
    rf"^(?:\d{{1,4}}([:./-]\d{{1,4}}){{0,2}}(am|pm|a\.m\.|p\.m\.|h)?|\d{{1,2}}(st|nd|rd|th)|"
    rf"(?:{_MONTHS})\.?,?|(?:{_DAYS})\.?,?|(?:{_WORDS})|{_KOREAN}+|"
    rf"\d{{4}}-\d{{2}}-\d{{2}}[tT ][\d:.]+([zZ]|[+-]\d{{2}}:?\d{{2}})?)$",
    re.IGNORECASE,
)


_DURATION = re.compile(r"^\d+(\.\d+)?[smhdw]$", re.IGNORECASE)
_ISO_FULL = re.compile(r"^\d{4}-\d{2}-\d{2}[tT]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([zZ]|[+-]\d{2}:?\d{2})?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?([zZ]|[+-]\d{2}:?\d{2})?$")
_BARE_NUMBER = re.compile(r"^\d{1,2},?$")
_MONTH = re.compile(rf"^(?:{_MONTHS})\.?,?$", re.IGNORECASE)


def looks_like_time(word: str) -> bool:
    return bool(_TIME_WORD.match(word))


def split_phrase(after: str) -> tuple[str, str]:
    """`tomorrow 9am Doors open` → (`tomorrow 9am`, `Doors open`).

    A time in double quotes ends at the closing quote: `"fri 9am" 3 seats left`. Otherwise the time is
    the longest run of time-like words (at most MAX_PHRASE_WORDS) at the start; the caller parses the
    longest prefix of it that reads as a time (see `phrase_candidates`)."""
    after = after.strip()
    if after.startswith(('"', "“")):
        closing = after.find('"', 1) if after.startswith('"') else after.find("”", 1)
        if closing > 0:
            return after[1:closing].strip(), after[closing + 1:].strip()
    words = after.split()
    if len(words) >= 2 and words[0].lower() == "in" and _DURATION.match(words[1]):
        return " ".join(words[:2]), " ".join(words[2:])
    if words and _ISO_FULL.match(words[0]):  # an ISO timestamp is complete: whatever follows is the text
        return words[0], " ".join(words[1:])
    if len(words) >= 2 and _ISO_DATE.match(words[0]) and _CLOCK.match(words[1]):
        return " ".join(words[:2]), " ".join(words[2:])
    run = 0
    while run < len(words) and run < MAX_PHRASE_WORDS and _time_word_at(words, run):
        run += 1
    if run == 0 and words:
        raise WhenError(f"`{words[0][:40]}` is not a time I can read: try `tomorrow 9am`, `fri 14:00`, "
                        "`2026-12-24 09:00`, `in 45m` or ISO-8601 with an offset")
    return " ".join(words[:run]), " ".join(words[run:])


def _time_word_at(words: list[str], index: int) -> bool:
    """A bare number (`24`) is part of the time only beside a month (`24 dec`, `dec 24`): otherwise it
    is the text's (`9am 3 seats left`)."""
    word = words[index]
    if not looks_like_time(word):
        return False
    if not _BARE_NUMBER.match(word):
        return True
    neighbours = words[max(index - 1, 0):index] + words[index + 1:index + 2]
    return any(_MONTH.match(n) for n in neighbours)


def phrase_candidates(after: str) -> list[tuple[str, str]]:
    """(phrase, rest) pairs to try, the longest phrase first."""
    phrase, rest = split_phrase(after)
    words = phrase.split()
    if after.strip().startswith(('"', "“")) or len(words) <= 1:
        return [(phrase, rest)]
    return [(" ".join(words[:n]), " ".join(words[n:] + ([rest] if rest else []))) for n in range(len(words), 0, -1)]


# --- reading the phrase ---------------------------------------------------------------------------

_ISO_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}[tT ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([zZ]|[+-]\d{2}:?\d{2})$")
_RELATIVE = re.compile(r"^in\s+(\S+)$", re.IGNORECASE)
_NUMERIC_DATE = re.compile(r"(?<![\d/.-])(\d{1,2})[/.](\d{1,2})(?![\d/.-]*\d{4})(?:[/.](\d{2,4}))?(?![\d/.])")
_HAS_TIME = re.compile(r"\d{1,2}[:.h]\d{2}|\d\s*(am|pm|a\.m\.|p\.m\.)|\b(noon|midnight|tonight)\b|\d+\s*시|정오|자정",
                       re.IGNORECASE)
_DATE_SETTINGS = {"PREFER_DATES_FROM": "future", "RETURN_AS_TIMEZONE_AWARE": False,
                  "PREFER_DAY_OF_MONTH": "first", "STRICT_PARSING": False}


def _korean_to_english(text: str) -> str:
    """dateparser knows Korean day words but not `오전 9시` clock times: rewrite those as `9:00 am`."""

    def clock(match: re.Match[str]) -> str:
        half, hour, minute, half_hour = match.group(1), int(match.group(2)), match.group(4), match.group(5)
        minutes = 30 if half_hour else int(minute or 0)
        if half in ("오후", "저녁", "밤", "낮") and hour < 12:
            hour += 12
        elif half in ("오전", "아침") and hour == 12:
            hour = 0
        return f" {hour:02d}:{minutes:02d} "

    text = re.sub(r"(오전|오후|아침|저녁|밤|낮)?\s*(\d{1,2})\s*시(\s*(\d{1,2})\s*분|\s*(반))?", clock, text)
    text = text.replace("정오", " 12:00 ").replace("자정", " 00:00 ")
    replacements = {"오늘": " today ", "내일": " tomorrow ", "모레": " in 2 days ", "글피": " in 3 days "}
    for korean, english in replacements.items():
        text = text.replace(korean, english)
    text = re.sub(r"(\d{1,2})\s*월\s*(\d{1,2})\s*일", lambda m: f" {m.group(2)} {_month_name(int(m.group(1)))} ", text)
    days = dict(zip("월화수목금토일", ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
                    strict=True))
    text = re.sub(r"([월화수목금토일])요일", lambda m: f" {days[m.group(1)]} ", text)
    return " ".join(text.split())


def _month_name(month: int) -> str:
    names = ("january february march april may june july august september october november december").split()
    return names[month - 1] if 1 <= month <= 12 else str(month)


def _localise(local: datetime, tz: ZoneInfo, shown: str) -> datetime:
    """A wall-clock time in `tz` → an instant, refusing the times DST skips or repeats."""
    first, second = local.replace(tzinfo=tz, fold=0), local.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != local:  # a gap: this time never happens
        raise WhenError(f"`{shown}` does not exist in {tz.key}: the clocks skip it "
                        f"({local:%Y-%m-%d %H:%M} is in the hour they go forward); pick another time")
    readings = tuple(sorted((first.astimezone(UTC), second.astimezone(UTC))))
    raise WhenError(f"`{shown}` happens twice in {tz.key} (the clocks go back that night): say which, "
                    "with an offset", readings)


def _dateparse(text: str, now_local: datetime, order: str | None = None) -> datetime | None:
    settings: dict[str, object] = {**_DATE_SETTINGS, "RELATIVE_BASE": now_local}
    if order:
        settings["DATE_ORDER"] = order
    return dateparser.parse(text, settings=settings, languages=["en"])


def parse_phrase(phrase: str, now: datetime, tz: ZoneInfo) -> datetime:
    """The instant (UTC) that `phrase`, written by someone in `tz` at `now`, names. Raises WhenError."""
    text = phrase.strip()
    if not text:
        raise WhenError("a time is missing")
    if _ISO_OFFSET.match(text):
        try:
            return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
        except ValueError as error:
            raise WhenError(f"`{phrase}` is not a real date and time") from error
    relative = _RELATIVE.match(text)
    if relative:
        try:
            return now + parse_duration(relative.group(1))
        except ValueError as error:
            raise WhenError(str(error)) from error
    english = _korean_to_english(text)
    if not _HAS_TIME.search(english) and not re.search(r"\bin \d+ (day|days|week|weeks)\b", english):
        raise WhenError(f"`{phrase}` has no time of day: add one, such as `{phrase} 9am`")
    now_local = now.astimezone(tz).replace(tzinfo=None)
    numeric = _NUMERIC_DATE.search(english)
    if numeric and not re.search(r"\d{4}-\d{2}-\d{2}", english):
        first, second = int(numeric.group(1)), int(numeric.group(2))
        if first != second and first <= 12 and second <= 12:
            readings = [r for r in (_dateparse(english, now_local, "MDY"), _dateparse(english, now_local, "DMY")) if r]
            instants = tuple(sorted({_localise(r, tz, phrase) for r in readings}))
            if len(instants) > 1:
                raise WhenError(f"`{phrase}` can be read two ways (month/day or day/month): write the month "
                                "as a word, such as `3 apr 9am`", instants)
    local = _dateparse(english, now_local)
    if local is None:
        raise WhenError(f"`{phrase}` is not a time I can read: try `tomorrow 9am`, `fri 14:00`, "
                        "`2026-12-24 09:00`, `in 45m` or ISO-8601 with an offset")
    if local.tzinfo is not None:  # the phrase named its own zone or offset ("9am utc", "+09:00")
        return local.astimezone(UTC)
    return _localise(local, tz, phrase)


@dataclass(frozen=True)
class ReadTime:
    at: datetime  # UTC
    phrase: str  # the words that named it
    rest: str  # what followed them


def read_time(after: str, now: datetime, tz: ZoneInfo) -> ReadTime:
    """The time at the start of `after` and the text after it. Raises WhenError (the longest reading's)."""
    first_error: WhenError | None = None
    for phrase, rest in phrase_candidates(after):
        try:
            return ReadTime(parse_phrase(phrase, now, tz), phrase, rest)
        except WhenError as error:
            if error.readings:  # ambiguous: never fall back to a shorter, different reading
                raise
            first_error = first_error or error
    assert first_error is not None
    raise first_error


def readings_text(readings: tuple[datetime, ...], tz: ZoneInfo) -> str:
    return " or ".join(f"{r.astimezone(tz):%a %d %b %Y %H:%M %Z} ({r:%Y-%m-%d %H:%M} UTC)" for r in readings)

"""Quiet hours in the recipient's own time zone (pure).

`QUIET_HOURS=21:00-08:00`: no SMS may arrive between 21:00 and 08:00 where its recipient is. The zone of a
number comes from its prefix (phonenumbers' geocoding data); a number whose prefix spans several zones
(a whole country) counts in each of them, and a send to many numbers must be outside quiet hours in
every zone involved: the strictest wins. When a send falls inside, the first moment that is outside in
every zone is offered instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

UNKNOWN_ZONE = "Etc/Unknown"
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
SEARCH_DAYS = 3  # how far ahead a first allowed time is looked for


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str | None) -> QuietHours | None:
        """`21:00-08:00` → QuietHours; empty or `off` → None. Raises ValueError with the rule."""
        if text is None or text.strip().lower() in ("", "off", "none"):
            return None
        match = _RANGE.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a range of times: write it like 21:00-08:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"{text!r} has a time that does not exist: hours 00-23, minutes 00-59")
        if (h1, m1) == (h2, m2):
            raise ValueError(f"{text!r} starts and ends at the same time: say when quiet hours end")
        return cls(time(h1, m1), time(h2, m2))

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # the range wraps midnight

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def zones_of(number: str) -> tuple[str, ...]:
    """The IANA zones a number may ring in: its prefix's, else its country's; () when unknown."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in number_zones.time_zones_for_number(parsed) if z != UNKNOWN_ZONE)
    if not zones:
        zones = tuple(z for z in number_zones._country_level_time_zones_for_number(parsed) if z != UNKNOWN_ZONE)
    return tuple(z for z in zones if _known(z))


def _known(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class QuietVerdict:
    allowed: bool
    inside: tuple[tuple[str, datetime], ...] = ()  # (zone, local time there) for the zones in quiet hours
    first_allowed: datetime | None = None  # UTC; None when allowed, or when no time works within SEARCH_DAYS
    numbers_inside: int = 0  # how many recipients are in quiet hours at the asked time

    def reason(self, quiet: QuietHours) -> str:
        if self.allowed:
            return ""
        shown = ", ".join(f"{local:%H:%M} in {zone}" for zone, local in self.inside[:3])
        more = f" and {len(self.inside) - 3} more zone(s)" if len(self.inside) > 3 else ""
        text = (f"{self.numbers_inside} recipient(s) would get it in quiet hours ({quiet} their time): "
                f"{shown}{more}")
        if self.first_allowed is not None:
            text += f"; the first time outside quiet hours for everyone is {self.first_allowed:%Y-%m-%d %H:%M} UTC"
        else:
            text += f"; no time in the next {SEARCH_DAYS} days is outside quiet hours in every zone: split the send"
        return text


def check(quiet: QuietHours | None, at: datetime, numbers: Iterable[str]) -> QuietVerdict:
    """Is `at` (UTC) outside quiet hours for every recipient? Numbers with no known zone are not judged."""
    if quiet is None:
        return QuietVerdict(True)
    by_zone: dict[str, int] = {}
    for number in numbers:
        for zone in zones_of(number):
            by_zone[zone] = by_zone.get(zone, 0) + 1
    if not by_zone:
        return QuietVerdict(True)
    inside = _inside(quiet, at, by_zone)
    if not inside:
        return QuietVerdict(True)
    count = max(by_zone[zone] for zone, _ in inside)  # a number spanning zones counts once per zone
    return QuietVerdict(False, tuple(inside), _first_allowed(quiet, at, by_zone), count)


def _inside(quiet: QuietHours, at: datetime, zones: Iterable[str]) -> list[tuple[str, datetime]]:
    found = []
    for zone in sorted(zones):
        local = at.astimezone(ZoneInfo(zone))
        if quiet.contains(local.time()):
            found.append((zone, local))
    return found


def _first_allowed(quiet: QuietHours, at: datetime, zones: dict[str, int]) -> datetime | None:
    """The earliest instant after `at` when no zone is in quiet hours: it is the end of some zone's quiet
    period, so only those instants need trying."""
    candidates: set[datetime] = set()
    for zone in zones:
        tz = ZoneInfo(zone)
        local_day = at.astimezone(tz).date()
        for offset in range(SEARCH_DAYS + 1):
            day = local_day + timedelta(days=offset)
            end = datetime.combine(day, quiet.end, tzinfo=tz).astimezone(UTC)
            if end > at:
                candidates.add(end)
    for candidate in sorted(candidates):
        if not _inside(quiet, candidate, zones):
            return candidate
    return None

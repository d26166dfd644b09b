"""Durations as people write them: `90s`, `15m`, `1h`, `2d` (pure)."""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`"90s"` -> 90 seconds. Raises ValueError with a readable message otherwise."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration: use a number and s, m, h or d, such as 90s, 15m or 1h")
    amount, unit = int(match.group(1)), match.group(2).lower()
    return timedelta(**{_UNITS[unit]: amount})


def parse_duration_list(text: str) -> list[timedelta]:
    """`"1h,10m"` -> [1 hour, 10 minutes], longest first, duplicates removed."""
    leads = {parse_duration(part) for part in text.split(",") if part.strip()}
    return sorted(leads, reverse=True)


def format_duration(delta: timedelta) -> str:
    """A short human form: `1h 5m`, `45s`, `2d 3h`."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)

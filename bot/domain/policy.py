"""Every rule the bot enforces itself, in one place (pure): provider windows, the Telnyx cancel
guard, and who may do what."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from bot.domain.durations import format_duration
from bot.providers.base import ProviderName

TELNYX_MIN_AHEAD = timedelta(minutes=5)
TELNYX_MAX_AHEAD = timedelta(days=5)
SOLAPI_MAX_MONTHS = 6  # "at most 6 months": calendar months, counted on Solapi's (Korean) calendar
KST = timezone(timedelta(hours=9))


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months later (the month's last day if it is shorter)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


def solapi_latest(now: datetime) -> datetime:
    """The latest send time Solapi takes: six calendar months from now, on Korean dates."""
    return add_months(now.astimezone(KST), SOLAPI_MAX_MONTHS)
# twilio.com/docs/messaging/features/message-scheduling: "between 15 minutes and 35 days" ahead
TWILIO_MIN_AHEAD = timedelta(minutes=15)
TWILIO_MAX_AHEAD = timedelta(days=35)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""

    @classmethod
    def allow(cls) -> Decision:
        return cls(True)

    @classmethod
    def refuse(cls, reason: str) -> Decision:
        return cls(False, reason)


def schedule_window(provider: ProviderName, send_at: datetime, now: datetime) -> Decision:
    ahead = send_at - now
    if ahead <= timedelta(0):
        return Decision.refuse(f"{send_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC is in the past")
    if provider is ProviderName.TELNYX:
        if ahead < TELNYX_MIN_AHEAD:
            return Decision.refuse(
                f"Telnyx schedules 5 minutes to 5 days ahead; {format_duration(ahead)} is too soon"
            )
        if ahead > TELNYX_MAX_AHEAD:
            return Decision.refuse(
                f"Telnyx schedules 5 minutes to 5 days ahead; {format_duration(ahead)} is too far"
            )
    if provider is ProviderName.TWILIO and not TWILIO_MIN_AHEAD <= ahead <= TWILIO_MAX_AHEAD:
        return Decision.refuse(
            f"Twilio schedules 15 minutes to 35 days ahead; {format_duration(ahead)} is too "
            f"{'soon' if ahead < TWILIO_MIN_AHEAD else 'far'}"
        )
    if provider is ProviderName.SOLAPI and send_at > solapi_latest(now):
        latest = solapi_latest(now)
        return Decision.refuse(
            f"Solapi schedules at most {SOLAPI_MAX_MONTHS} months ahead (calendar months), "
            f"so no later than {latest:%Y-%m-%d %H:%M} KST"
        )
    return Decision.allow()


def telnyx_cancel(send_at: datetime | None, now: datetime, guard: timedelta) -> Decision:
    """Telnyx refuses cancels within a minute of send_at; we refuse within `guard`, before calling."""
    if send_at is None:
        return Decision.allow()
    left = send_at - now
    if left <= timedelta(0):
        return Decision.refuse(f"it was due {format_duration(left)} ago; it can no longer be cancelled")
    if left <= guard:
        return Decision.refuse(
            f"it goes out in {format_duration(left)}; Telnyx cancels only more than "
            f"{format_duration(guard)} before the send time"
        )
    return Decision.allow()


@dataclass(frozen=True)
class Permissions:
    admins: frozenset[str] = frozenset()
    auditors: frozenset[str] = frozenset()
    require_second_approver: bool = False

    def is_admin(self, user: str) -> bool:
        # With no admins configured every member is trusted (a small team).
        return not self.admins or user in self.admins

    def may_cancel(self, user: str, owner: str | None) -> Decision:
        if self.is_admin(user) or (owner is not None and owner == user):
            return Decision.allow()
        if owner is None:
            return Decision.refuse("only admins (SMS_ADMINS) may cancel sends the bot did not schedule")
        return Decision.refuse(f"only <@{owner}>, who scheduled it, or an admin (SMS_ADMINS) may cancel it")

    def may_delete(self, user: str, owner: str | None) -> Decision:
        decision = self.may_cancel(user, owner)
        return decision if decision.allowed else Decision.refuse(decision.reason.replace("cancel", "delete"))

    def may_approve(self, user: str, requester: str) -> Decision:
        if self.require_second_approver and user == requester:
            return Decision.refuse("a second person must approve: you asked for this send yourself")
        if self.admins and user not in self.admins:
            return Decision.refuse("only admins (SMS_ADMINS) may approve sends")
        return Decision.allow()

    def may_read_all_audit(self, user: str) -> bool:
        if not self.admins and not self.auditors:
            return True
        return user in self.admins or user in self.auditors

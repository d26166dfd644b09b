"""Guard rails on what leaves (issue 15): opt-outs, quiet hours in each recipient's zone, daily caps.

One function, `check_send`, that every path calls before it asks a provider to send or schedule
anything: `/sms schedule`, `/sms send` (a Solapi group, whose send time is now), and the paths other
branches build (a held send when it is approved, a reschedule). It records what it decided in the
ledger itself — a refusal with the rule that refused it, or an admin's `--override` — so no caller can
forget to.

Order: opt-outs first (nobody may override them: the recipient said no), then quiet hours, then the
daily cap; an admin's `--override` lets a send past the last two, and each rule it overrides is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.domain import quiet_hours
from bot.domain.results import Reply, Tone
from bot.operations.common import Invoker
from bot.operations.services import Services
from bot.providers.base import ProviderName
from bot.providers.registry import display
from db.models import Action, Outcome

OPT_OUT = "opt-out"
QUIET_HOURS = "quiet hours (QUIET_HOURS)"
OVERRIDE = "override"
SHOWN = 5  # opted-out numbers named in a refusal


def daily_limit_rule(provider: str) -> str:
    return f"daily limit (DAILY_LIMIT_{provider.upper()})"


@dataclass(frozen=True)
class SendPlan:
    """What is about to leave: `recipients` are E.164 numbers (HighLevel: contact ids, which have no zone
    and cannot be opted out by number); `count` when the provider knows more recipients than are listed
    (a Solapi group); `action` names the path in the ledger (schedule, send, approve, reschedule)."""

    action: str
    provider: ProviderName
    recipients: tuple[str, ...]
    send_at: datetime  # UTC; now for an immediate send
    count: int | None = None
    target: str | None = None  # the provider's id, when it exists already (a group, a reschedule)

    @property
    def recipient_count(self) -> int:
        return max(self.count or 0, len(self.recipients))


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str

    def reply(self, not_done: str = "Not scheduled") -> Reply:
        return Reply(Tone.REFUSED, f"{not_done}: {self.reason}.")


@dataclass(frozen=True)
class _Broken:
    rule: str
    reason: str


async def check_send(services: Services, who: Invoker, plan: SendPlan, override: bool = False) -> Refusal | None:
    """None when `plan` may go; else the refusal to answer with. Both outcomes are in the ledger when it
    returns (a refusal as `refused` with its rule, an override as `overridden`); nothing else is written."""
    refusal = await _opt_outs(services, plan)
    broken: list[_Broken] = []
    if refusal is None:
        quiet = _quiet(services, plan)
        if quiet is not None:
            broken.append(quiet)
        cap = await _daily_cap(services, plan)
        if cap is not None:
            broken.append(cap)
        if broken and not override:
            first = broken[0]
            admin = services.permissions.is_admin(who.user)
            hint = " (you are an admin: add `--override` to send anyway)" if admin else ""
            refusal = Refusal(first.rule, first.reason + hint)
        elif broken and not services.permissions.is_admin(who.user):
            rules = " and ".join(b.rule for b in broken)
            refusal = Refusal(OVERRIDE, f"only admins (SMS_ADMINS) may override {rules}: {broken[0].reason}")
    if refusal is not None:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=plan.provider, target=plan.target,
            detail=f"{plan.action} refused by {refusal.rule}: {refusal.reason}"))
        return refusal
    if broken:  # an admin's override: each rule it passes is recorded
        await services.db(services.store.record, *[who.draft(
            Action.OVERRIDDEN, Outcome.OK, provider=plan.provider, target=plan.target,
            detail=f"{plan.action} to {plan.recipient_count} recipient(s) at {plan.send_at:%Y-%m-%d %H:%M} UTC "
                   f"let past {b.rule} by --override: {b.reason}") for b in broken])
    return None


async def _opt_outs(services: Services, plan: SendPlan) -> Refusal | None:
    numbers = [r for r in plan.recipients if r.startswith("+")]
    if not numbers:
        return None
    opted = await services.db(services.store.opted_out, numbers)
    if not opted:
        return None
    shown = ", ".join(opted[:SHOWN]) + (f" and {len(opted) - SHOWN} more" if len(opted) > SHOWN else "")
    return Refusal(OPT_OUT, f"{len(opted)} of {plan.recipient_count} recipient(s) opted out of messages "
                            f"(replied STOP, or an admin added them): {shown}. Leave them out, or an admin "
                            "removes them with `/sms optout remove <number> <reason>`")


def _quiet(services: Services, plan: SendPlan) -> _Broken | None:
    rule = quiet_hours.QuietHours.parse(services.settings.quiet_hours)
    verdict = quiet_hours.check(rule, plan.send_at, plan.recipients)
    if verdict.allowed or rule is None:
        return None
    return _Broken(QUIET_HOURS, verdict.reason(rule))


def day_bounds(at: datetime, zone: str) -> tuple[date, datetime, datetime]:
    """The calendar day of `at` in `zone`, and its start and end as instants (23 or 25 hours at DST)."""
    tz = ZoneInfo(zone)
    day = at.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return day, start, end


async def _daily_cap(services: Services, plan: SendPlan) -> _Broken | None:
    limit = services.settings.daily_limit(plan.provider.value)
    if limit is None:
        return None
    zone = services.settings.daily_limit_tz
    day, start, end = day_bounds(plan.send_at, zone)
    used = await services.db(services.store.recipients_going_out, plan.provider.value, start, end)
    if used + plan.recipient_count <= limit:
        return None
    left = max(0, limit - used)
    return _Broken(daily_limit_rule(plan.provider.value),
                   f"{display(plan.provider)} may send to {limit:,} recipient(s) a day; on {day:%Y-%m-%d} ({zone}) "
                   f"{used:,} are used and {left:,} left, and this send has {plan.recipient_count:,}")


async def describe_rules(services: Services) -> list[str]:
    """The guard rails in force, in words (for `/sms policy`)."""
    settings = services.settings
    quiet = quiet_hours.QuietHours.parse(settings.quiet_hours)
    lines = [f"*Quiet hours*: {quiet} in each recipient's own time zone (from the number; the strictest "
             "zone wins); a send inside is refused with the first allowed time, admins may add `--override`."
             if quiet else "*Quiet hours*: none (`QUIET_HOURS` is not set)."]
    caps = [f"{display(p)} {limit:,}" for p in ProviderName
            if (limit := settings.daily_limit(p.value)) is not None]
    lines.append(f"*Daily limits* (recipients per {settings.daily_limit_tz} day, by the day the sends go out): "
                 + ", ".join(caps) + "; admins may add `--override`." if caps
                 else "*Daily limits*: none (no `DAILY_LIMIT_<PROVIDER>` is set).")
    total, _ = await services.db(services.store.optouts, 0)
    lines.append(f"*Opt-outs*: {total:,} number(s) must not be messaged (inbound STOP, `/sms optout`); "
                 "nobody can override them.")
    return lines

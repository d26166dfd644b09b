"""The approval rules file (`SMS_POLICY_FILE`): when a send needs approval, and from whom (pure).

A TOML file of `[[rule]]` tables. A rule matches a planned send by provider, recipient count, segment
count, estimated cost and the time of day it goes out; every matching rule must be satisfied, each by
`quorum` distinct approvers from its list (Slack user ids, or `@handle` of a Slack user group), never
counting the requester. With no file, nothing here applies (today's behaviour).

    [costs]                     # estimated cost of one segment, per provider (any currency unit)
    telnyx = 0.004

    [[rule]]
    name = "large sends"
    recipients_over = 100       # more than 100 recipients
    approvers = ["@sms-leads"]  # a Slack user group, resolved when approval is asked
    quorum = 2

    [[rule]]
    name = "night sends on Telnyx"
    providers = ["telnyx"]
    hours = "20:00-08:00"       # goes out between these times...
    tz = "America/New_York"     # ...on this clock (default UTC)
    approvers = ["U012ABCDEF", "U034GHIJKL"]

The file is checked once at start-up; a mistake stops the bot with the file, the line and the reason.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain.quiet_hours import QuietHours

PROVIDERS = ("solapi", "highlevel", "telnyx", "twilio")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP = re.compile(r"^@[a-z0-9][a-z0-9._-]*$")
_RULE_KEYS = {"name", "providers", "recipients_over", "segments_over", "cost_over", "hours", "tz", "approvers",
              "quorum", "actions"}
ACTIONS = ("schedule", "send")


class PolicyFileError(ValueError):
    """A mistake in the rules file, with where it is."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        where = f"{source}, line {line}" if line else source
        super().__init__(f"{where}: {reason}")
        self.source, self.line, self.reason = source, line, reason


@dataclass(frozen=True)
class PlannedSend:
    """What a rule is judged on."""

    action: str  # schedule | send
    provider: str
    recipients: int
    segments: int  # per recipient
    send_at: datetime  # UTC


@dataclass(frozen=True)
class Rule:
    name: str
    approvers: tuple[str, ...]  # user ids and @group handles
    quorum: int = 1
    providers: tuple[str, ...] = ()  # empty: any
    actions: tuple[str, ...] = ACTIONS
    recipients_over: int | None = None
    segments_over: int | None = None
    cost_over: float | None = None
    hours: QuietHours | None = None  # reused: a daily time range, possibly wrapping midnight
    tz: str = "UTC"

    def matches(self, plan: PlannedSend, cost: float | None) -> bool:
        if plan.action not in self.actions:
            return False
        if self.providers and plan.provider not in self.providers:
            return False
        if self.recipients_over is not None and plan.recipients <= self.recipients_over:
            return False
        if self.segments_over is not None and plan.segments <= self.segments_over:
            return False
        if self.cost_over is not None and (cost is None or cost <= self.cost_over):
            return False
        if self.hours is not None:
            return self.hours.contains(plan.send_at.astimezone(ZoneInfo(self.tz)).time())
        return True

    def describe(self) -> str:
        conditions = []
        if self.providers:
            conditions.append("on " + " or ".join(self.providers))
        if self.recipients_over is not None:
            conditions.append(f"to more than {self.recipients_over:,} recipients")
        if self.segments_over is not None:
            conditions.append(f"longer than {self.segments_over} segment(s)")
        if self.cost_over is not None:
            conditions.append(f"estimated to cost more than {self.cost_over:g}")
        if self.hours is not None:
            conditions.append(f"going out between {self.hours.start:%H:%M} and {self.hours.end:%H:%M} {self.tz}")
        what = " and ".join(self.actions)
        scope = ", ".join(conditions) if conditions else "always"
        who = ", ".join(a if a.startswith("@") else f"<@{a}>" for a in self.approvers)
        return f"“{self.name}”: a {what} {scope} needs {self.quorum} approval(s) from {who} (not the requester)"


@dataclass(frozen=True)
class ApprovalPolicy:
    rules: tuple[Rule, ...] = ()
    costs: dict[str, float] = field(default_factory=dict)

    def cost(self, plan: PlannedSend) -> float | None:
        price = self.costs.get(plan.provider)
        return None if price is None else round(price * plan.segments * plan.recipients, 6)

    def required(self, plan: PlannedSend) -> tuple[Rule, ...]:
        cost = self.cost(plan)
        return tuple(rule for rule in self.rules if rule.matches(plan, cost))

    def describe(self) -> list[str]:
        return [rule.describe() for rule in self.rules]


def satisfied(rule: Rule, approvals: Iterable[str], requester: str, members: dict[str, frozenset[str]]) -> bool:
    """Has `rule` got its quorum from `approvals` (user ids)? `members` maps each @group to its members now."""
    allowed: set[str] = set()
    for approver in rule.approvers:
        allowed |= members.get(approver, frozenset()) if approver.startswith("@") else {approver}
    return len({a for a in approvals if a in allowed and a != requester}) >= rule.quorum


def may_approve(rule: Rule, user: str, requester: str, members: dict[str, frozenset[str]]) -> bool:
    return satisfied(Rule(rule.name, rule.approvers, 1), [user], requester, members)


def parse(text: str, source: str = "SMS_POLICY_FILE") -> ApprovalPolicy:
    """Read and check a rules file. Raises PolicyFileError naming the line and the reason."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = getattr(error, "lineno", None) or _line_from_message(str(error))
        raise PolicyFileError(source, line, f"not valid TOML ({getattr(error, 'msg', error)})") from error
    unknown = set(data) - {"rule", "costs"}
    if unknown:
        key = sorted(unknown)[0]
        raise PolicyFileError(source, _line_of_key(text, key),
                              f"unknown section `{key}` (expected [[rule]] or [costs])")
    rule_lines = [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("[[rule]]")]
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise PolicyFileError(source, _line_of_key(text, "rule"), "`rule` must be a list of [[rule]] tables")
    rules = []
    for index, raw in enumerate(raw_rules):
        line = rule_lines[index] if index < len(rule_lines) else None
        rules.append(_rule(raw, index, source, line, text))
    names = [rule.name for rule in rules]
    for name in names:
        if names.count(name) > 1:
            raise PolicyFileError(source, None, f"two rules are named “{name}”: names must be unique")
    costs = data.get("costs", {})
    if not isinstance(costs, dict):
        raise PolicyFileError(source, _line_of_key(text, "costs"), "[costs] must be a table of provider = price")
    for provider, price in costs.items():
        if provider not in PROVIDERS:
            raise PolicyFileError(source, _line_of_key(text, provider), f"[costs] names `{provider}`, not a provider "
                                  f"({', '.join(PROVIDERS)})")
        if not isinstance(price, int | float) or isinstance(price, bool) or price < 0:
            raise PolicyFileError(source, _line_of_key(text, provider),
                                  f"the price for {provider} must be a number ≥ 0")
    return ApprovalPolicy(tuple(rules), {k: float(v) for k, v in costs.items()})


def _rule(raw: object, index: int, source: str, line: int | None, text: str) -> Rule:
    def fail(reason: str, key: str | None = None) -> PolicyFileError:
        at = _line_of_key(text, key, after=line) if key else line
        return PolicyFileError(source, at or line, f"rule {index + 1}: {reason}")

    if not isinstance(raw, dict):
        raise fail("must be a table")
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise fail(f"unknown key `{key}` (known: {', '.join(sorted(_RULE_KEYS))})", key)
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("needs a `name`")
    approvers = raw.get("approvers")
    if not isinstance(approvers, list) or not approvers or not all(isinstance(a, str) for a in approvers):
        raise fail("needs `approvers`: a list of Slack user ids (U…) or user group handles (@…)", "approvers")
    for approver in approvers:
        if not (_USER_ID.match(approver) or _GROUP.match(approver)):
            raise fail(f"`{approver}` is neither a Slack user id (U012ABCDEF) nor a user group handle (@sms-leads)",
                       "approvers")
    quorum = raw.get("quorum", 1)
    if not isinstance(quorum, int) or isinstance(quorum, bool) or quorum < 1:
        raise fail("`quorum` must be a whole number ≥ 1", "quorum")
    if all(not a.startswith("@") for a in approvers) and quorum > len(set(approvers)):
        raise fail(f"`quorum` {quorum} is more than the {len(set(approvers))} approver(s) listed", "quorum")
    providers = raw.get("providers", [])
    if not isinstance(providers, list) or any(p not in PROVIDERS for p in providers):
        raise fail(f"`providers` must be a list of {', '.join(PROVIDERS)}", "providers")
    actions = raw.get("actions", list(ACTIONS))
    if not isinstance(actions, list) or not actions or any(a not in ACTIONS for a in actions):
        raise fail(f"`actions` must be a list of {', '.join(ACTIONS)}", "actions")
    numbers: dict[str, int | float | None] = {}
    for key in ("recipients_over", "segments_over", "cost_over"):
        value = raw.get(key)
        if value is None:
            numbers[key] = None
            continue
        fits = isinstance(value, int | float) if key == "cost_over" else isinstance(value, int)
        if not fits or isinstance(value, bool) or value < 0:
            raise fail(f"`{key}` must be a number ≥ 0", key)
        numbers[key] = value
    hours = None
    if "hours" in raw:
        try:
            hours = QuietHours.parse(str(raw["hours"]))
        except ValueError as error:
            raise fail(f"`hours`: {error}", "hours") from error
    tz = raw.get("tz", "UTC")
    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise fail(f"`tz` {tz!r} is not an IANA time zone (such as America/New_York)", "tz") from error
    return Rule(
        name=name.strip(), approvers=tuple(approvers), quorum=quorum, providers=tuple(providers),
        actions=tuple(actions), recipients_over=_int(numbers["recipients_over"]),
        segments_over=_int(numbers["segments_over"]),
        cost_over=None if numbers["cost_over"] is None else float(numbers["cost_over"]), hours=hours, tz=str(tz),
    )


def _int(value: int | float | None) -> int | None:
    return None if value is None else int(value)


def _line_of_key(text: str, key: str | None, after: int | None = None) -> int | None:
    if key is None:
        return None
    pattern = re.compile(rf"^\s*(\[+\s*)?{re.escape(key)}\b")
    for number, line in enumerate(text.splitlines(), start=1):
        if (after is None or number >= after) and pattern.match(line):
            return number
    return None


def _line_from_message(message: str) -> int | None:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else None

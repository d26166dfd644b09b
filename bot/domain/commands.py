"""`/sms` text → a typed command, or a usage error that says what was wrong (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain import phones, text_limits
from bot.domain.durations import parse_duration
from bot.domain.ids import IdError, TargetRef, parse_target, provider_from_name
from bot.domain.slack_text import unescape
from bot.domain.when import WhenError, read_time, readings_text
from bot.providers.base import ProviderName

# The longest text any provider takes (Solapi LMS: 2,000 bytes, so 2,000 ASCII characters); each
# provider's own limit is checked by text_limits.
MAX_TEXT = text_limits.LONGEST
MAX_RECIPIENTS = 10_000
MAX_LIMIT = 1000
MAX_INPUT = 200_000

_CONTACT = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
_USER = re.compile(r"^<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>$")
_RAW_USER = re.compile(r"^@?([UW][A-Z0-9]{8,20})$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

USAGE: dict[str, str] = {
    "help": "/sms help",
    "providers": "/sms providers",
    "schedule": "/sms schedule <provider> <to>[,<to>...] at <when> <text>   ·   /sms schedule (opens the form)",
    "reschedule": "/sms reschedule <id> at <when>",
    "track": "/sms track <provider> <id>",
    "send": "/sms send <groupId>",
    "cancel": "/sms cancel <id>   ·   /sms cancel <id> <id> …   ·   /sms cancel all mine [since <7d|date>]",
    "delete": "/sms delete <groupId>",
    "status": "/sms status <id>",
    "list": "/sms list [mine|all]",
    "audit": "/sms audit [<id>|<@user>|<provider>] [since <7d|date>] [limit <n>]",
    "policy": "/sms policy",
    "optout": "/sms optout add <number>   ·   /sms optout remove <number> <reason>   ·   /sms optout list",
}
# `--override` (admins only) lets a schedule or send past quiet hours and daily caps, never past an opt-out.
OVERRIDE = "--override"

EXAMPLES: dict[str, str] = {
    "help": "/sms help",
    "providers": "/sms providers",
    "schedule": "/sms schedule telnyx +15551234567,+15557654321 at {tomorrow_9} Doors open at 10",
    "reschedule": "/sms reschedule telnyx:182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e at {tomorrow_9}",
    "track": "/sms track solapi G4V20181005162502HEA0ZB9AQOUMSE1",
    "send": "/sms send G4V20181005162502HEA0ZB9AQOUMSE1",
    "cancel": "/sms cancel telnyx:182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e   ·   /sms cancel all mine since 7d",
    "delete": "/sms delete G4V20181005162502HEA0ZB9AQOUMSE1",
    "status": "/sms status G4V20181005162502HEA0ZB9AQOUMSE1",
    "list": "/sms list mine",
    "audit": "/sms audit <@U012AB3CD> telnyx since {week_ago}",
    "policy": "/sms policy",
    "optout": "/sms optout remove +15551234567 asked by phone to get messages again",
}


def examples(now: datetime) -> dict[str, str]:
    """EXAMPLES with their times filled in from `now`, so an example pasted as it stands works:
    tomorrow 09:00 UTC is always between 9 and 33 hours ahead (inside every provider's window)."""
    tomorrow_9 = (now.astimezone(UTC) + timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    values = {"tomorrow_9": tomorrow_9.strftime("%Y-%m-%dT%H:%MZ"),
              "week_ago": (now.astimezone(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")}
    return {verb: text.format(**values) for verb, text in EXAMPLES.items()}


# What /sms help says about recipients (shown under the commands).
RECIPIENTS_NOTE = (
    "`<to>`: a number with + and its country code (`+15551234567`, `+821012345678`) or, for the "
    "configured region (`DEFAULT_REGION`, Korea by default), as written there (`010-1234-5678`); "
    "Solapi gets numbers outside Korea with their country code apart, HighLevel takes contact ids."
)


class UsageError(ValueError):
    def __init__(self, message: str, verb: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.verb = verb

    @property
    def usage(self) -> str | None:
        return USAGE.get(self.verb) if self.verb else None


@dataclass(frozen=True)
class Help:
    verb: str | None = None


@dataclass(frozen=True)
class Providers:
    pass


@dataclass(frozen=True)
class Schedule:
    provider: ProviderName
    to: tuple[str, ...]
    send_at: datetime
    text: str
    override: bool = False  # `--override`: an admin lets it past quiet hours and daily caps


@dataclass(frozen=True)
class Compose:
    """`/sms schedule` with nothing after it: the compose form."""


@dataclass(frozen=True)
class Reschedule:
    """Move a scheduled send (every message of its schedule) to a new time."""

    target: TargetRef
    send_at: datetime


@dataclass(frozen=True)
class Track:
    provider: ProviderName
    target: TargetRef


@dataclass(frozen=True)
class Send:
    target: TargetRef
    override: bool = False


@dataclass(frozen=True)
class Policy:
    """The rules in force, in words."""


@dataclass(frozen=True)
class OptOutEdit:
    """`optout add|remove <number> [reason]`: admins edit the list of numbers that must not be messaged."""

    add: bool
    number: str
    reason: str = ""


@dataclass(frozen=True)
class OptOutList:
    pass


@dataclass(frozen=True)
class Cancel:
    targets: tuple[TargetRef, ...]


@dataclass(frozen=True)
class CancelMine:
    """Bulk: everything upcoming that the invoker scheduled (optionally only since a time)."""

    since: datetime | None = None


@dataclass(frozen=True)
class Delete:
    target: TargetRef


@dataclass(frozen=True)
class Status:
    target: TargetRef


@dataclass(frozen=True)
class ListSends:
    scope: str = "mine"  # mine | all


@dataclass(frozen=True)
class Audit:
    target: TargetRef | None = None
    actor: str | None = None
    provider: ProviderName | None = None
    since: datetime | None = None
    limit: int = 20


Command = (
    Help | Providers | Schedule | Compose | Reschedule | Track | Send | Cancel | CancelMine | Delete | Status
    | ListSends | Audit | Policy | OptOutEdit | OptOutList
)


def parse(text: str, now: datetime, tz: ZoneInfo | None = None,
          default_region: str | None = phones.DEFAULT_REGION) -> Command:
    """Parse the text after `/sms`. `now` (UTC) resolves relative times; a time written without an
    offset is read in `tz` (the writer's zone); a phone number without `+` is read as a national
    number of `default_region`."""
    if len(text) > MAX_INPUT:
        raise UsageError(f"that is {len(text):,} characters: too long for one command")
    if _CONTROL.search(text):
        raise UsageError("the command has control characters in it; type it again without them")
    words = text.split()
    if not words:
        return Help()
    verb, args = words[0].lower(), words[1:]
    rest = text.strip()[len(words[0]) :].strip()
    match verb:
        case "help" | "?":
            return Help(args[0].lower() if args and args[0].lower() in USAGE else None)
        case "providers":
            _no_args(verb, args)
            return Providers()
        case "schedule" if not args:
            return Compose()
        case "reschedule":
            return _reschedule(args, rest, now, tz or ZoneInfo("UTC"))
        case "schedule":
            override = bool(args) and args[0].lower() == OVERRIDE
            if override:
                rest = rest[len(args[0]):].strip()
            planned = _schedule(rest, now, tz or ZoneInfo("UTC"), default_region)
            return replace(planned, override=True) if override else planned
        case "track":
            if len(args) != 2:
                raise UsageError("track needs a provider and an id", verb)
            provider = _provider(args[0], verb)
            target = _target(args[1] if ":" in args[1] else f"{provider}:{args[1]}", verb)
            if target.provider is not provider:
                raise UsageError(f"that id is prefixed {target.provider}, not {provider}", verb)
            return Track(provider, target)
        case "send" if any(a.lower() == OVERRIDE for a in args):
            ids = [a for a in args if a.lower() != OVERRIDE]
            if len(ids) != 1:
                raise UsageError("send needs exactly one id", verb)
            return Send(_target(ids[0], verb), override=True)
        case "policy":
            _no_args(verb, args)
            return Policy()
        case "optout" | "opt-out":
            return _optout(args, default_region)
        case "send" | "delete" | "status":
            if len(args) != 1:
                raise UsageError(f"{verb} needs exactly one id", verb)
            target = _target(args[0], verb)
            if verb == "send":
                return Send(target)
            if verb == "delete":
                return Delete(target)
            return Status(target)
        case "cancel":
            return _cancel(args, now)
        case "list":
            if len(args) > 1 or (args and args[0].lower() not in ("mine", "all")):
                raise UsageError("list takes `mine` or `all`", verb)
            return ListSends(args[0].lower() if args else "mine")
        case "audit":
            return _audit(args, now)
    raise UsageError(f"`{_show(words[0])}` is not an /sms command")


def _optout(args: list[str], default_region: str | None) -> OptOutEdit | OptOutList:
    verb = "optout"
    action = args[0].lower() if args else ""
    if action == "list" and len(args) == 1:
        return OptOutList()
    if action not in ("add", "remove") or len(args) < 2:
        raise UsageError("optout takes `add <number>`, `remove <number> <reason>` or `list`", verb)
    try:
        number = phones.normalise(args[1], default_region)
    except phones.PhoneError as error:
        raise UsageError(f"`{_show(error.number)}` is not a phone number: {error.why}", verb) from None
    reason = " ".join(args[2:]).strip()
    if action == "remove" and not reason:
        raise UsageError("say why the number may be messaged again: `optout remove <number> <reason>`", verb)
    return OptOutEdit(action == "add", number, reason[:200])


def _no_args(verb: str, args: list[str]) -> None:
    if args:
        raise UsageError(f"{verb} takes no arguments", verb)


def _provider(word: str, verb: str) -> ProviderName:
    provider = provider_from_name(word)
    if provider is None:
        raise UsageError(
            f"`{_show(word)}` is not a provider: use telnyx, twilio, solapi (or coolsms) or highlevel", verb
        )
    return provider


def _target(word: str, verb: str) -> TargetRef:
    try:
        return parse_target(word)
    except IdError as exc:
        raise UsageError(str(exc), verb) from exc


def _schedule(rest: str, now: datetime, tz: ZoneInfo, default_region: str | None) -> Schedule:
    verb = "schedule"
    parts = rest.split(None, 2)
    if len(parts) < 3:
        raise UsageError("schedule needs a provider, recipients, a time and a text", verb)
    provider = _provider(parts[0], verb)
    recipients = tuple(r.strip() for r in parts[1].split(",") if r.strip())
    remainder = parts[2]
    when_words = remainder.split(None, 1)
    keyword = when_words[0].lower()
    if keyword not in ("at", "in"):
        raise UsageError("say when with `at <time>` or `in <duration>` after the recipients", verb)
    after = when_words[1] if len(when_words) > 1 else ""
    if keyword == "in":  # `in 45m`, read like `at in 45m`
        after = f"in {after}"
    if not after.strip():
        raise UsageError("a time is missing after `at`/`in`", verb)
    try:
        read = read_time(after, now, tz)
    except WhenError as error:
        both = f": {readings_text(error.readings, tz)}" if error.readings else ""
        raise UsageError(f"{error.message}{both}", verb) from error
    send_at, message = read.at, read.rest
    if send_at <= now:
        local = "" if tz.key == "UTC" else f"{send_at.astimezone(tz):%Y-%m-%d %H:%M %Z} = "
        raise UsageError(f"{local}{shown_time(send_at)} is in the past: pick a time ahead", verb)
    message = unescape(message).strip()  # Slack sends `&amp;`, `<!channel>`…: the phone gets what was typed
    recipients = _check_recipients(provider, recipients, verb, default_region)
    if not message:
        raise UsageError("the text is empty: write what to send after the time", verb)
    too_long = text_limits.check(provider, message)
    if too_long is not None:
        raise UsageError(too_long, verb)
    return Schedule(provider, recipients, send_at, message)


def _reschedule(args: list[str], rest: str, now: datetime, tz: ZoneInfo) -> Reschedule:
    verb = "reschedule"
    if len(args) < 3 or args[1].lower() not in ("at", "in"):
        raise UsageError("reschedule needs an id and a new time: `reschedule <id> at <when>`", verb)
    target = _target(args[0], verb)
    after = rest.split(None, 2)[2]
    if args[1].lower() == "in":
        after = f"in {after}"
    send_at = read_only_time(after, now, tz, verb)
    return Reschedule(target, send_at)


def read_only_time(text: str, now: datetime, tz: ZoneInfo, verb: str | None = None) -> datetime:
    """A time and nothing else (`tomorrow 9am`, `in 2h`, ISO-8601), read in `tz`, in the future."""
    try:
        read = read_time(text.strip(), now, tz)
    except WhenError as error:
        both = f": {readings_text(error.readings, tz)}" if error.readings else ""
        raise UsageError(f"{error.message}{both}", verb) from error
    if read.rest.strip():
        raise UsageError(f"`{_show(read.rest.strip())}` after the time is not understood: give only a time", verb)
    if read.at <= now:
        local = "" if tz.key == "UTC" else f"{read.at.astimezone(tz):%Y-%m-%d %H:%M %Z} = "
        raise UsageError(f"{local}{shown_time(read.at)} is in the past: pick a time ahead", verb)
    return read.at


def check_recipients(provider: ProviderName, recipients: tuple[str, ...], default_region: str | None,
                     verb: str = "schedule") -> tuple[str, ...]:
    """The recipients as the provider will get them (the rules `/sms schedule` applies), or UsageError."""
    return _check_recipients(provider, recipients, verb, default_region)


def _check_recipients(
    provider: ProviderName, recipients: tuple[str, ...], verb: str, default_region: str | None
) -> tuple[str, ...]:
    """The recipients as the provider will get them: contact ids for HighLevel, E.164 numbers for
    the others (national numbers read for `default_region`)."""
    if not recipients:
        raise UsageError("no recipients given", verb)
    if len(recipients) > MAX_RECIPIENTS:
        raise UsageError(f"{len(recipients):,} recipients; at most {MAX_RECIPIENTS:,} at a time", verb)
    if provider is ProviderName.HIGHLEVEL:
        bad = [r for r in recipients if not _CONTACT.match(r)]
        if bad:
            raise UsageError(
                f"`{_show(bad[0])}` is not a HighLevel contact id (HighLevel sends to contacts, not numbers)", verb
            )
    else:
        try:
            recipients = tuple(phones.normalise(r, default_region) for r in recipients)
        except phones.PhoneError as error:
            raise UsageError(f"`{_show(error.number)}` is not a phone number the bot can send to: {error.why}",
                             verb) from None
    seen: set[str] = set()
    for recipient in recipients:
        if recipient in seen:  # after normalising: 010-1234-5678 and +821012345678 are one number
            raise UsageError(f"a recipient is listed twice ({_show(recipient)})", verb)
        seen.add(recipient)
    return recipients


def _duration(word: str, verb: str) -> timedelta:
    try:
        return parse_duration(word)
    except ValueError as exc:
        raise UsageError(str(exc), verb) from exc


def parse_when(word: str, now: datetime, verb: str | None = None) -> datetime:
    """An ISO-8601 time with an offset (or Z)."""
    try:
        when = datetime.fromisoformat(word.replace("z", "Z"))
    except ValueError as exc:
        raise UsageError(
            f"`{_show(word)}` is not a time: use ISO-8601 with an offset such as 2026-11-24T09:00+09:00, "
            "or `in 45m`",
            verb,
        ) from exc
    if when.tzinfo is None:
        raise UsageError(
            f"`{_show(word)}` has no time zone: add one, such as +09:00 or Z", verb
        )
    return when.astimezone(UTC)


def parse_since(word: str, now: datetime, verb: str | None = None) -> datetime:
    """`7d` (ago), an ISO time with an offset, or a date (midnight UTC)."""
    if re.fullmatch(r"\d+[smhd]", word, re.IGNORECASE):
        return now - _duration(word, verb or "audit")
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", word):
        try:
            when = datetime.fromisoformat(word).replace(tzinfo=UTC)
        except ValueError as exc:
            raise UsageError(f"`{_show(word)}` is not a date", verb) from exc
    else:
        try:
            when = parse_when(word, now, verb)
        except UsageError as exc:
            raise UsageError(f"`since {_show(word)}` is not a time: since takes a span back such as `7d`, "
                             "`12h` or `30m`, a date such as 2026-11-01, or an ISO-8601 time with an offset",
                             verb) from exc
    if when > now:
        raise UsageError(f"`since {_show(word)}` is in the future", verb)
    return when


def _cancel(args: list[str], now: datetime) -> Cancel | CancelMine:
    verb = "cancel"
    if not args:
        raise UsageError("cancel needs an id", verb)
    if args[0].lower() == "all":
        if len(args) < 2 or args[1].lower() != "mine":
            raise UsageError("bulk cancel is `cancel all mine` (optionally `since 7d` or `since <date>`)", verb)
        tail = args[2:]
        if not tail:
            return CancelMine()
        if len(tail) == 2 and tail[0].lower() == "since":
            return CancelMine(parse_since(tail[1], now, verb))
        raise UsageError("after `cancel all mine` only `since 7d` (or a date) may follow", verb)
    ids = [a for arg in args for a in arg.split(",") if a]
    if len(ids) > MAX_RECIPIENTS:
        raise UsageError(f"at most {MAX_RECIPIENTS:,} ids at a time", verb)
    targets = tuple(_target(a, verb) for a in ids)
    if len({str(t) for t in targets}) != len(targets):
        raise UsageError("an id is listed twice", verb)
    return Cancel(targets)


def _audit(args: list[str], now: datetime) -> Audit:
    verb = "audit"
    target: TargetRef | None = None
    actor: str | None = None
    provider: ProviderName | None = None
    since: datetime | None = None
    limit = 20
    i = 0
    while i < len(args):
        word = args[i]
        lower = word.lower()
        if lower in ("since", "limit"):
            if i + 1 >= len(args):
                raise UsageError(f"`{lower}` needs a value", verb)
            value = args[i + 1]
            if lower == "since":
                since = parse_since(value, now, verb)
            else:
                if not value.isdigit():
                    raise UsageError(f"`limit {_show(value)}`: the limit is a whole number from 1 to {MAX_LIMIT}",
                                     verb)
                limit = int(value) if len(value) < 8 else MAX_LIMIT + 1
                if not 1 <= limit <= MAX_LIMIT:
                    raise UsageError(f"`limit {_show(value)}`: the limit is from 1 to {MAX_LIMIT}", verb)
            i += 2
            continue
        user = _USER.match(word) or _RAW_USER.match(word)
        if user and actor is None:
            actor = user.group(1)
        elif provider_from_name(word) is not None and provider is None:
            provider = provider_from_name(word)
        elif word.startswith("<@") or word.startswith("@"):
            raise UsageError(f"`{_show(word)}` is not a Slack user: mention them, like @alice", verb)
        elif target is None:
            target = _target(word, verb)
        else:
            raise UsageError(f"`{_show(word)}` is not an audit filter", verb)
        i += 1
    return Audit(target, actor, provider, since, limit)


def shown_time(at: datetime) -> str:
    """A time as people read it: to the second, in UTC (never microseconds)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _show(text: str, limit: int = 40) -> str:
    printable = "".join(ch if ch.isprintable() and ch not in "`<>&" else "?" for ch in text)
    return printable if len(printable) <= limit else printable[: limit - 1] + "…"

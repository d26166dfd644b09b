"""What the verbs share: who asked, finding the provider of an id, and saying provider errors plainly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from bot.domain.durations import format_duration
from bot.domain.ids import TargetRef
from bot.domain.results import Card, CardKind, Reply, Tone, inert
from bot.operations.services import Services
from bot.providers.base import ErrorKind, Provider, ProviderError, ProviderName
from bot.providers.registry import CREDENTIALS, display
from db.ledger import EntryDraft
from db.models import TrackedSend


@dataclass(frozen=True)
class Invoker:
    user: str
    team: str | None = None
    channel: str | None = None
    request_id: str | None = None
    name: str | None = None  # the name Slack's payload gave (kept for the CLI's `@name`s)

    def draft(self, action: str, outcome: str, *, provider: str | None = None, target: str | None = None,
              detail: str = "") -> EntryDraft:
        return EntryDraft(
            actor=self.user, action=action, outcome=outcome, channel=self.channel, team=self.team,
            provider=provider, target=target, detail=detail, request_id=self.request_id,
        )


class Stop(Exception):
    """Ends an operation early with a reply for the user."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


@dataclass(frozen=True)
class Resolved:
    provider_name: ProviderName
    provider: Provider
    target: str
    send: TrackedSend | None


async def resolve(services: Services, ref: TargetRef) -> Resolved:
    """Provider and ledger record for an id: an explicit prefix wins, then the ledger, then the shape."""
    send = await services.db(services.store.find_send, ref.id, ref.provider if ref.explicit else None)
    name: ProviderName | None = ref.provider if ref.explicit else None
    if name is None and send is not None:
        name = ProviderName(send.provider)
    if name is None:
        name = ref.provider
    if name is None:
        raise Stop(Reply(
            Tone.ERROR,
            f"I can't tell which provider `{ref.id}` belongs to. Prefix it: `telnyx:{ref.id}`, "
            f"`solapi:{ref.id}` or `highlevel:{ref.id}`.",
        ))
    return Resolved(name, provider_for(services, name), ref.id, send)


def provider_for(services: Services, name: ProviderName) -> Provider:
    provider = services.providers.get(name)
    if provider is None:
        raise Stop(Reply(
            Tone.ERROR,
            f"{display(name)} is not configured here: set {CREDENTIALS[name]} to use it.",
        ))
    return provider


def describe_error(error: ProviderError) -> str:
    """A provider error in plain words, keeping the provider's own code and message."""
    who = display(error.provider)
    message, code = inert(error.message), inert(error.code or "").replace("`", "'")
    said = f"`{code}` {message}" if code else message
    status = f" (HTTP {error.http_status})" if error.http_status else ""
    match error.kind:
        case ErrorKind.TIMEOUT:
            return f"{who} did not answer in time: {message}."
        case ErrorKind.UNAVAILABLE:
            return f"{who} is unavailable{status}: {said}."
        case ErrorKind.RATE_LIMITED:
            wait = f" Try again in {format_duration_s(error.retry_after)}." if error.retry_after else ""
            return f"{who} is rate-limiting the bot{status}.{wait}"
        case ErrorKind.GARBAGE:
            return f"{who} sent an answer the bot could not read{status}: {message}."
        case ErrorKind.AUTH:
            return f"{who} refused the bot's credentials{status}: {said}. Check the API key settings."
        case ErrorKind.NOT_FOUND:
            return f"{who} does not know that id{status}: {said}."
        case ErrorKind.UNSUPPORTED:
            return message
    return f"{who} said no{status}: {said}."


def format_duration_s(seconds: float) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=max(1, round(seconds))))


def ledger_detail(error: ProviderError) -> str:
    parts = [f"{error.kind}"]
    if error.http_status:
        parts.append(f"HTTP {error.http_status}")
    if error.code:
        parts.append(str(error.code))
    return " ".join(parts) + f": {error.message}"


def when(at: datetime | None) -> str:
    if at is None:
        return "an unknown time"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def card_for(sends: list[TrackedSend], kind: CardKind, headline: str, record_id: str,
             outcome: str | None = None) -> Card:
    first = sends[0]
    return Card(
        kind=kind,
        record_id=record_id,
        provider=first.provider,
        targets=[s.target for s in sends],
        send_at=min((s.send_at for s in sends if s.send_at), default=None),
        recipient_count=sum(s.recipient_count for s in sends),
        text_preview=first.text_preview,
        owner=first.created_by,
        headline=headline,
        outcome=outcome,
    )

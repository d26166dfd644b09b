"""The one small interface every provider client implements, and the one error type it raises."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable


class ProviderName(StrEnum):
    SOLAPI = "solapi"
    HIGHLEVEL = "highlevel"
    TELNYX = "telnyx"
    TWILIO = "twilio"


class SendState(StrEnum):
    """The provider's status, normalised so the bot can reason about any provider."""

    PENDING = "pending"  # Solapi group being prepared: may be sent, scheduled or deleted
    SCHEDULED = "scheduled"  # waiting for its send time: may be cancelled
    SENDING = "sending"  # handed over, on its way
    SENT = "sent"  # done (sent, delivered, complete)
    CANCELLED = "cancelled"
    FAILED = "failed"
    DELETED = "deleted"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in {SendState.SENT, SendState.CANCELLED, SendState.FAILED, SendState.DELETED}


class ErrorKind(StrEnum):
    REJECTED = "rejected"  # the provider said no (4xx with its own code): don't retry
    NOT_FOUND = "not_found"
    AUTH = "auth"  # credentials refused
    RATE_LIMITED = "rate_limited"  # 429
    UNAVAILABLE = "unavailable"  # 5xx or a dropped connection
    TIMEOUT = "timeout"
    GARBAGE = "garbage"  # a body we could not read (HTML error page, truncated JSON, wrong types)
    UNSUPPORTED = "unsupported"  # this provider has no such operation


@dataclass(eq=False)
class ProviderError(Exception):
    """What went wrong at a provider, with its own code and message kept verbatim."""

    provider: str
    kind: ErrorKind
    message: str
    code: str | None = None
    http_status: int | None = None
    retry_after: float | None = None  # seconds, from Retry-After or rate-limit headers

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = [self.provider]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code:
            parts.append(self.code)
        return f"{' '.join(parts)}: {self.message}"

    @property
    def outcome_unknown(self) -> bool:
        """True when the request may or may not have taken effect at the provider."""
        return self.kind in {ErrorKind.TIMEOUT, ErrorKind.UNAVAILABLE, ErrorKind.GARBAGE}


@dataclass(frozen=True)
class MessageState:
    """The provider's own view of one message or group."""

    provider: str
    id: str
    state: SendState
    status: str  # the provider's status word, verbatim (e.g. SCHEDULED, scheduled, delivered)
    send_at: datetime | None = None  # UTC, timezone-aware
    recipients: tuple[str, ...] = ()
    recipient_count: int = 0
    text: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class ScheduleRequest:
    to: tuple[str, ...]  # E.164 numbers (Solapi, Telnyx) or contact ids (HighLevel)
    text: str
    send_at: datetime  # UTC, timezone-aware
    sender: str | None = None
    # The intent's id: the same for every attempt of one schedule, so a provider that honours an
    # idempotency key (Telnyx) can be asked again after a timeout without sending twice.
    key: str | None = None


@dataclass(frozen=True)
class ScheduleOutcome:
    """What a schedule call created. Telnyx and HighLevel take one recipient per message, so a
    schedule to many may partly fail; Solapi makes one group for all."""

    scheduled: list[MessageState]
    failed: list[tuple[str, ProviderError]] = field(default_factory=list)  # (recipient, why): surely not taken
    # (recipient, why) where the provider may or may not have taken it (a timeout, a dropped
    # connection): never reported as "not scheduled"; reconciliation settles them.
    unknown: list[tuple[str, ProviderError]] = field(default_factory=list)

    @classmethod
    def of(cls, recipients: tuple[str, ...], results: list[MessageState | ProviderError]) -> ScheduleOutcome:
        """One result per recipient (one message each, as Telnyx, Twilio and HighLevel take them) → the
        outcome; raises the first refusal when nothing was scheduled and nothing may have been."""
        scheduled = [r for r in results if isinstance(r, MessageState)]
        errors = [(to, r) for to, r in zip(recipients, results, strict=True) if isinstance(r, ProviderError)]
        failed = [(to, e) for to, e in errors if not e.outcome_unknown]
        unknown = [(to, e) for to, e in errors if e.outcome_unknown]
        if not scheduled and not unknown:
            raise failed[0][1]
        return cls(scheduled=scheduled, failed=failed, unknown=unknown)


async def cancel_or_find_cancelled(
    attempt: Awaitable[MessageState], look: Callable[[], Awaitable[MessageState]]
) -> MessageState:
    """A cancel the provider refuses may only be one already done (an earlier attempt of ours whose answer
    was lost, or someone else's): cancelling is what was asked, so look before passing the refusal on."""
    try:
        return await attempt
    except ProviderError as error:
        if error.kind not in {ErrorKind.REJECTED, ErrorKind.NOT_FOUND}:
            raise
        try:
            current = await look()
        except ProviderError:
            raise error from None
        if current.state is SendState.CANCELLED:
            return current
        raise


async def ping_by_lookup(lookup: Awaitable[object]) -> None:
    """A ping asks for something no one has: "not found" means the credentials were accepted, so only
    another error (a refused key, an outage) is passed on."""
    try:
        await lookup
    except ProviderError as error:
        if error.kind is ErrorKind.NOT_FOUND:
            return
        raise


class WithoutMessageGroups:
    """`send` and `delete` for a provider that takes one message per recipient (Telnyx, Twilio, HighLevel):
    only Solapi prepares groups that can be sent or deleted, so here both refuse."""

    name: ProviderName
    display_name: ClassVar[str]  # as the user reads it: "Telnyx"

    async def send(self, target: str) -> MessageState:
        raise self._no_groups("send", "schedule a message")

    async def delete(self, target: str) -> MessageState:
        raise self._no_groups("delete", "cancel the message")

    def _no_groups(self, action: str, instead: str) -> ProviderError:
        return ProviderError(
            self.name.value,
            ErrorKind.UNSUPPORTED,
            f"{self.display_name} has no message groups: there is no prepared group to {action}; {instead} instead",
        )


@runtime_checkable
class Provider(Protocol):
    """One client per provider. Every method raises ProviderError and nothing else."""

    name: ProviderName

    async def status(self, target: str) -> MessageState: ...

    async def cancel(self, target: str) -> MessageState:
        """Cancel a scheduled message or group; returns the state after the cancel."""
        ...

    async def schedule(self, request: ScheduleRequest) -> ScheduleOutcome:
        """Schedule. Raises ProviderError only when nothing at all was scheduled."""
        ...

    async def send(self, target: str) -> MessageState:
        """Send a prepared (PENDING) group now. Only Solapi has this."""
        ...

    async def delete(self, target: str) -> MessageState:
        """Delete a prepared (PENDING) group. Only Solapi has this."""
        ...

    async def ping(self) -> None:
        """Cheap authenticated call: raises ProviderError if the provider does not answer."""
        ...

    async def aclose(self) -> None: ...


def repeats_schedule_safely(provider: object) -> bool:
    """True for a provider whose `schedule`, asked again with the same ScheduleRequest (same `key`),
    cannot create a second message (Telnyx's Idempotency-Key): only then may an unknown outcome be
    settled by asking again. A client says so with a class attribute `schedule_is_idempotent = True`."""
    return getattr(provider, "schedule_is_idempotent", False) is True

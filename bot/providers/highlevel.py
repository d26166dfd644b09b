"""HighLevel (LeadConnector) Conversations API, Version 2021-04-15: one scheduled SMS per contact.

Endpoints (GoHighLevel/highlevel-api-docs apps/conversations.json):
- `POST /conversations/messages` `{type: "SMS", contactId, message, scheduledTimestamp}` → `messageId`.
  `scheduledTimestamp` is UTC seconds. The spec's `required: [type, subType, contactId, status]` is a
  generator artefact; a real SMS body has no subType/status, so none is sent.
- `GET /conversations/messages/{id}` → the message, its `status` word.
- `DELETE /conversations/messages/{id}/schedule` → `{status, message}` under HTTP 200, where
  `status: 404` ("Failed cancel the scheduled message") means it was NOT cancelled.
Errors: `{statusCode, message (string or list), error?}`.

After a cancel: the GET status enum has no cancelled word and the endpoint is documented as deleting
the scheduled message, so we expect a cancelled message to be gone (GET → not found). A status word
such as "cancelled"/"canceled"/"deleted" is read as CANCELLED all the same, should HighLevel show one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Unpack

import httpx

from bot.providers.base import (
    ErrorKind,
    MessageState,
    ProviderError,
    ProviderName,
    ScheduleOutcome,
    ScheduleRequest,
    SendState,
    WithoutMessageGroups,
    ping_by_lookup,
)
from bot.providers.http import (
    ConnectionOptions,
    ProviderHTTP,
    RetryListener,
    garbage,
    kind_for_status,
    retry_listener,
    schedule_each,
)

PROVIDER = ProviderName.HIGHLEVEL.value
# The v1 spec's value (tests/specs); the v3 spec lists `v3` for the same paths, which the official SDK
# forces. Both are documented; the bot keeps the one whose spec its requests are validated against.
API_VERSION = "2021-04-15"
MAX_IN_FLIGHT = 10
PING_ID = "smsopsPing0000000000"  # 20 alphanumerics, the shape of a HighLevel id; no message has it

_STATES: dict[str, SendState] = {
    "scheduled": SendState.SCHEDULED,
    "pending": SendState.SENDING,
    "queued": SendState.SENDING,
    "sent": SendState.SENT,
    "delivered": SendState.SENT,
    "read": SendState.SENT,
    "opened": SendState.SENT,
    "clicked": SendState.SENT,
    "connected": SendState.SENT,  # a call that was answered: it happened
    "failed": SendState.FAILED,
    "undelivered": SendState.FAILED,
    "opt_out": SendState.FAILED,  # the contact opted out: it will not be delivered
    "cancelled": SendState.CANCELLED,
    "canceled": SendState.CANCELLED,
    "deleted": SendState.CANCELLED,
}


def _message_text(body: Mapping[str, Any]) -> str:
    message = body.get("message")
    if isinstance(message, list):
        return "; ".join(str(item) for item in message)
    if message is None:
        return str(body.get("error") or "")
    return str(message)


def parse_error(response: httpx.Response, body: Any) -> ProviderError:
    """A HighLevel error answer `{statusCode, message, error?}` → ProviderError."""
    status = response.status_code
    kind = kind_for_status(status)
    retry_after: float | None = None
    if status == 429:
        retry_after = _window_seconds(response)
    if not isinstance(body, Mapping):
        reason = response.reason_phrase or "error"
        message = f"HTTP {status} {reason}".strip() if body is None else f"HTTP {status}: {str(body)[:120]}"
        return ProviderError(PROVIDER, kind, message, http_status=status, retry_after=retry_after)
    message = _message_text(body) or f"HTTP {status}"
    code = body.get("statusCode", body.get("status"))
    code_text = str(int(code)) if isinstance(code, int | float) and not isinstance(code, bool) else None
    if status == 400 and "not found" in message.lower():
        kind = ErrorKind.NOT_FOUND  # HighLevel answers some "no such thing" cases with 400
    return ProviderError(
        PROVIDER, kind, message, code=code_text or str(status), http_status=status, retry_after=retry_after
    )


def _window_seconds(response: httpx.Response) -> float | None:
    """HighLevel sends no Retry-After; when the burst window is spent, wait one window."""
    interval = response.headers.get("x-ratelimit-interval-milliseconds")
    try:
        return float(interval) / 1000.0 if interval is not None else None
    except ValueError:
        return None


def _parse_time(value: Any) -> datetime | None:
    """`scheduledTimestamp` (seconds, or milliseconds) or an ISO string → UTC datetime."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = value / 1000.0 if value > 10**11 else float(value)
        try:
            return datetime.fromtimestamp(seconds, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def _timestamp(value: datetime) -> int:
    if value.tzinfo is None:  # ScheduleRequest promises UTC; a naive value is read as UTC
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def message_state(payload: Any, *, expected_id: str | None = None) -> MessageState:
    """A GetMessageResponseDto → MessageState."""
    if isinstance(payload, Mapping) and isinstance(payload.get("message"), Mapping):
        payload = payload["message"]  # tolerate a `{message: {...}}` wrapper
    if not isinstance(payload, Mapping):
        raise garbage(PROVIDER, f"message is {type(payload).__name__}, not an object")
    message_id = payload.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise garbage(PROVIDER, "message without an id")
    if expected_id is not None and message_id != expected_id:
        raise garbage(PROVIDER, f"asked for {expected_id}, got {message_id}")
    status_word = payload.get("status")
    if status_word is not None and not isinstance(status_word, str):
        raise garbage(PROVIDER, "`status` is not a string")
    status_word = status_word or ""
    contact = payload.get("contactId")
    if contact is not None and not isinstance(contact, str):
        raise garbage(PROVIDER, "`contactId` is not a string")
    text = payload.get("body")
    return MessageState(
        provider=PROVIDER,
        id=message_id,
        state=_STATES.get(status_word.lower(), SendState.UNKNOWN),
        status=status_word,
        send_at=_parse_time(payload.get("scheduledTimestamp")),
        recipients=(contact,) if contact else (),
        recipient_count=1 if contact else 0,
        text=text if isinstance(text, str) else None,
        raw=dict(payload),
    )


class HighLevelClient(WithoutMessageGroups):
    """HighLevel Conversations over httpx: schedule, status, cancel, ping."""

    name = ProviderName.HIGHLEVEL
    display_name = "HighLevel"
    schedule_is_idempotent = False  # no idempotency key: a repeated schedule would send twice

    def __init__(
        self,
        token: str,
        *,
        location_id: str | None = None,
        base_url: str = "https://services.leadconnectorhq.com",
        **connection: Unpack[ConnectionOptions],
    ) -> None:
        self._token = token
        self.location_id = location_id
        self._http = ProviderHTTP(
            PROVIDER,
            base_url,
            error_parser=parse_error,
            auth_headers=lambda: {"Authorization": f"Bearer {self._token}", "Version": API_VERSION},
            **connection,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def status(self, target: str) -> MessageState:
        state: MessageState = await self._http.request(
            "GET", f"/conversations/messages/{target}", idempotent=True,
            parse=lambda body: message_state(body, expected_id=target))
        return state

    async def cancel(self, target: str) -> MessageState:
        attempts = _AttemptCounter()
        try:
            with attempts:
                state: MessageState = await self._http.request(
                    "DELETE", f"/conversations/messages/{target}/schedule", idempotent=True,
                    parse=lambda body: _cancel_answer(body, target),
                )
            return state
        except ProviderError as error:
            if error.kind not in {ErrorKind.REJECTED, ErrorKind.NOT_FOUND}:
                raise
            return await self._reconcile_cancel(target, error, retried=attempts.retried)

    async def _reconcile_cancel(self, target: str, error: ProviderError, *, retried: bool) -> MessageState:
        """A refused cancel: was it already done (by a repeat of ours, or by someone else)?"""
        try:
            current = await self.status(target)
        except ProviderError as lookup:
            if retried and lookup.kind is ErrorKind.NOT_FOUND:
                # An earlier attempt of ours whose answer was lost deleted it: HighLevel removes a
                # cancelled scheduled message, so "gone" after our own retry means "cancelled".
                return MessageState(provider=PROVIDER, id=target, state=SendState.CANCELLED, status="deleted")
            raise error from None
        if current.state is SendState.CANCELLED:
            return current
        if current.state is SendState.SCHEDULED and current.raw.get("messageType") == "TYPE_EMAIL":
            return await self._cancel_email(target)
        raise error

    async def _cancel_email(self, target: str) -> MessageState:
        """A scheduled email has its own cancel path (`cancel-scheduled-email-message`), which answers
        like the SMS one."""
        body = await self._http.request(
            "DELETE", f"/conversations/messages/email/{target}/schedule", idempotent=True
        )
        status = body.get("status") if isinstance(body, Mapping) else None
        if isinstance(status, bool) or not isinstance(status, int | float):
            raise garbage(PROVIDER, "email cancel answer has no numeric `status`")
        if not 200 <= status < 300:
            raise ProviderError(PROVIDER, ErrorKind.REJECTED, _message_text(body) or "cancel refused",
                                code=str(int(status)), http_status=200)
        return MessageState(provider=PROVIDER, id=target, state=SendState.CANCELLED, status="cancelled",
                            raw=dict(body))

    async def schedule(self, request: ScheduleRequest) -> ScheduleOutcome:
        if not request.to:
            raise ProviderError(PROVIDER, ErrorKind.REJECTED, "no recipients", code="NoRecipients")
        when = _timestamp(request.send_at)

        async def one(contact_id: str) -> MessageState | ProviderError:
            body: dict[str, Any] = {
                "type": "SMS",
                "contactId": contact_id,
                "message": request.text,
                "scheduledTimestamp": when,
            }
            if request.sender:
                body["fromNumber"] = request.sender
            # Not idempotent: a timeout or 5xx may have scheduled it, so never repeat blindly.
            outcome: MessageState | ProviderError = await self._http.request(
                "POST", "/conversations/messages", json_body=body, idempotent=False,
                parse=lambda answer: _scheduled(answer, contact_id, request),
            )
            return outcome

        # No idempotency key at HighLevel: after a timeout or a dropped answer it may or may not
        # exist, and asking again could send twice, so such a contact is reported as unknown.
        return await schedule_each(request.to, one, in_flight=MAX_IN_FLIGHT)

    async def ping(self) -> None:
        """Cancel the schedule of an id no message has: it needs `conversations/message.write`, the
        scope sending needs anyway (a search would need `conversations.readonly`, which sending does
        not), and changes nothing. HighLevel answers HTTP 200 `{status: 404}`; a bad token is 401."""
        await ping_by_lookup(self._http.request(
            "DELETE", f"/conversations/messages/{PING_ID}/schedule", idempotent=True, operation="ping"))


def _cancel_answer(body: Any, target: str) -> MessageState:
    if not isinstance(body, Mapping):
        raise garbage(PROVIDER, "cancel answer is not an object")
    status = body.get("status")
    if isinstance(status, bool) or not isinstance(status, int | float):
        raise garbage(PROVIDER, "cancel answer has no numeric `status`")
    if 200 <= status < 300:
        return MessageState(provider=PROVIDER, id=target, state=SendState.CANCELLED, status="cancelled",
                            raw=dict(body))
    # HTTP 200 with {"status": 404, "message": "Failed cancel the scheduled message"}: not done.
    raise ProviderError(PROVIDER, ErrorKind.REJECTED, _message_text(body) or "cancel refused",
                        code=str(int(status)), http_status=200)


def _scheduled(answer: Any, contact_id: str, request: ScheduleRequest) -> MessageState | ProviderError:
    if not isinstance(answer, Mapping):
        raise garbage(PROVIDER, "POST /conversations/messages answer is not an object")
    message_id = answer.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise garbage(PROVIDER, "POST /conversations/messages answer has no `messageId`")
    status_word = answer.get("status")
    status_word = status_word if isinstance(status_word, str) else "scheduled"
    if status_word.lower() in {"failed", "undelivered"}:
        return ProviderError(
            PROVIDER,
            ErrorKind.REJECTED,
            str(answer.get("msg") or f"message {message_id} {status_word}"),
            code=status_word,
            http_status=200,
        )
    # A scheduled message comes back "pending" (the response enum has no "scheduled"): it waits.
    state = (
        SendState.SCHEDULED
        if status_word.lower() in {"pending", "scheduled", "queued"}
        else (_STATES.get(status_word.lower(), SendState.SCHEDULED))
    )
    return MessageState(
        provider=PROVIDER,
        id=message_id,
        state=state,
        status=status_word,
        send_at=datetime.fromtimestamp(_timestamp(request.send_at), tz=UTC),  # whole seconds, as sent
        recipients=(contact_id,),
        recipient_count=1,
        text=request.text,
        raw=dict(answer),
    )


class _AttemptCounter:
    """Counts the retries of the requests made inside it, still telling any outer retry listener."""

    def __init__(self) -> None:
        self.retries = 0
        self._outer: RetryListener | None = None
        self._token: Any = None

    def __enter__(self) -> _AttemptCounter:
        self._outer = retry_listener.get()
        self._token = retry_listener.set(self._heard)
        return self

    def __exit__(self, *exc: object) -> None:
        retry_listener.reset(self._token)

    async def _heard(self, provider: str, attempt: int, error: ProviderError) -> None:
        self.retries += 1
        if self._outer is not None:
            await self._outer(provider, attempt, error)

    @property
    def retried(self) -> bool:
        return self.retries > 0

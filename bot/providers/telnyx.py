"""Telnyx Messaging v2: one scheduled message per recipient, cancelled by id.

Endpoints (team-telnyx/openapi spec3.yml, the subset in shared/specs/telnyx-messaging.yml):
- `POST /messages/schedule` → `{data: OutboundMessagePayload}`; `to` is one number.
- `GET /messages/{id}` → `{data: …}`; the status lives on `to[].status`.
- `DELETE /messages/{id}` → the cancelled payload at the TOP LEVEL (no `data` wrapper). Only a message
  with `status=scheduled` and `send_at` more than a minute ahead can be cancelled.
Errors come as `{"errors": [{code, title, detail}]}`, except the DELETE 403/404 bodies, which the spec
types as a bare `{code, title, detail}`; both are read. Codes are strings.

The message payload in the spec (and the SDK's `Message` type) has no `send_at`: the time a schedule
asked for is what the bot knows (the ledger's), and a GET may not tell it, so `send_at` is read when
present and otherwise left unknown.

Every schedule carries an `Idempotency-Key` derived from the intent and the recipient (Telnyx replays a
successful answer to the same key, method, path and byte-identical body for 24 hours:
developers.telnyx.com/docs/development/api-fundamentals/idempotency), so a timeout or a 5xx is retried
with the same key, and a later reconciliation may ask again without scheduling twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
    cancel_or_find_cancelled,
    ping_by_lookup,
)
from bot.providers.http import ConnectionOptions, ProviderHTTP, garbage, kind_for_status, schedule_each

PROVIDER = ProviderName.TELNYX.value
MAX_IN_FLIGHT = 10
# A syntactically valid UUID no message will ever have: `GET` on it costs nothing and proves the key.
PING_ID = "00000000-0000-4000-8000-000000000000"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(intent_key: str, recipient: str) -> str:
    """The key for one recipient of one intent: stable across attempts and restarts, within Telnyx's
    pattern `^[A-Za-z0-9_:-]{1,255}$`, and hashed because Telnyx asks for no sensitive data (a phone
    number) in it."""
    digest = hashlib.sha256(f"{intent_key}\n{recipient}".encode()).hexdigest()[:40]
    return f"smsops:{digest}"

_STATES: dict[str, SendState] = {
    "scheduled": SendState.SCHEDULED,
    "queued": SendState.SENDING,
    "sending": SendState.SENDING,
    "sent": SendState.SENT,
    "delivered": SendState.SENT,
    "delivery_unconfirmed": SendState.SENT,
    "cancelled": SendState.CANCELLED,
    "canceled": SendState.CANCELLED,
    "expired": SendState.FAILED,
    "sending_failed": SendState.FAILED,
    "delivery_failed": SendState.FAILED,
}

# Telnyx's general error codes that say "there is no such message" (10005 Resource not found,
# 10006 Invalid ID: a string that is not a UUID cannot name a message).
_NOT_FOUND_CODES = {"10005", "10006"}
_AUTH_CODES = {"10009", "10010"}  # Authentication failed, Authorization failed


def parse_error(response: httpx.Response, body: Any) -> ProviderError:
    """A Telnyx error answer → ProviderError, from `{"errors": [...]}` or a bare error object."""
    status = response.status_code
    entry: Mapping[str, Any] | None = None
    if isinstance(body, Mapping):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
            entry = errors[0]
        elif "code" in body or "title" in body:
            entry = body
    if entry is None:
        reason = response.reason_phrase or "error"
        message = f"HTTP {status} {reason}".strip() if body is None else f"HTTP {status}: {str(body)[:120]}"
        return ProviderError(PROVIDER, kind_for_status(status), message, http_status=status)
    code = entry.get("code")
    code_text = str(code) if code is not None else None
    title = str(entry.get("title") or "").strip()
    detail = str(entry.get("detail") or "").strip()
    message = f"{title}: {detail}" if title and detail else (title or detail or f"HTTP {status}")
    kind = kind_for_status(status)
    if code_text in _NOT_FOUND_CODES and status < 500:
        kind = ErrorKind.NOT_FOUND
    elif status == 403 and code_text not in _AUTH_CODES:
        # Telnyx uses 403 for "this message cannot be cancelled" as well as for a key without rights.
        kind = ErrorKind.REJECTED
    return ProviderError(PROVIDER, kind, message, code=code_text, http_status=status)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _format_time(value: datetime) -> str:
    if value.tzinfo is None:  # ScheduleRequest promises UTC; a naive value is read as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _schedule_answer(answer: Any) -> MessageState:
    if not isinstance(answer, Mapping) or "data" not in answer:
        raise garbage(PROVIDER, "POST /messages/schedule answer has no `data`")
    return message_state(answer["data"])


def message_state(payload: Any, *, expected_id: str | None = None) -> MessageState:
    """An OutboundMessagePayload (GET's `data`, schedule's `data`, or DELETE's top level) → MessageState."""
    if not isinstance(payload, Mapping):
        raise garbage(PROVIDER, f"message is {type(payload).__name__}, not an object")
    message_id = payload.get("id")
    if not isinstance(message_id, str) or not message_id:
        raise garbage(PROVIDER, "message without an id")
    if expected_id is not None and message_id.lower() != expected_id.lower():
        raise garbage(PROVIDER, f"asked for {expected_id}, got {message_id}")
    to = payload.get("to")
    if not isinstance(to, list) or not all(isinstance(item, Mapping) for item in to):
        raise garbage(PROVIDER, "`to` is not a list of recipients")
    recipients = tuple(str(item["phone_number"]) for item in to if isinstance(item.get("phone_number"), str))
    status_word = to[0].get("status") if to else None
    if status_word is not None and not isinstance(status_word, str):
        raise garbage(PROVIDER, "`to[].status` is not a string")
    status_word = status_word or ""
    text = payload.get("text")
    return MessageState(
        provider=PROVIDER,
        id=message_id,
        state=_STATES.get(status_word.lower(), SendState.UNKNOWN),
        status=status_word,
        send_at=_parse_time(payload.get("send_at")),
        recipients=recipients,
        recipient_count=len(to),
        text=text if isinstance(text, str) else None,
        raw=dict(payload),
    )


class TelnyxClient(WithoutMessageGroups):
    """Telnyx Messaging v2 over httpx: schedule, status, cancel, ping."""

    name = ProviderName.TELNYX
    display_name = "Telnyx"
    # Asking again with the same ScheduleRequest (same key) cannot schedule twice: see the module doc.
    schedule_is_idempotent = True

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "https://api.telnyx.com/v2",
        sender: str | None = None,
        messaging_profile_id: str | None = None,
        **connection: Unpack[ConnectionOptions],
    ) -> None:
        self._api_key = api_key
        self.sender = sender
        self.messaging_profile_id = messaging_profile_id
        self._http = ProviderHTTP(
            PROVIDER,
            base_url,
            error_parser=parse_error,
            auth_headers=lambda: {"Authorization": f"Bearer {self._api_key}"},
            **connection,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def status(self, target: str) -> MessageState:
        def read(body: Any) -> MessageState:
            if not isinstance(body, Mapping) or "data" not in body:
                raise garbage(PROVIDER, "GET /messages/{id} answer has no `data`")
            return message_state(body["data"], expected_id=target)

        state: MessageState = await self._http.request("GET", f"/messages/{target}", idempotent=True, parse=read)
        return state

    async def cancel(self, target: str) -> MessageState:
        def read(body: Any) -> MessageState:
            if isinstance(body, Mapping) and "data" in body and "to" not in body:
                body = body["data"]  # tolerate a wrapped answer, though the spec has none
            return message_state(body, expected_id=target)

        return await cancel_or_find_cancelled(
            self._http.request("DELETE", f"/messages/{target}", idempotent=True, parse=read),
            lambda: self.status(target))

    async def schedule(self, request: ScheduleRequest) -> ScheduleOutcome:
        sender = request.sender or self.sender
        if not sender and not self.messaging_profile_id:
            raise ProviderError(
                PROVIDER,
                ErrorKind.REJECTED,
                "no sender: set TELNYX_FROM (a number) or TELNYX_MESSAGING_PROFILE_ID",
                code="NoSender",
            )
        if not request.to:
            raise ProviderError(PROVIDER, ErrorKind.REJECTED, "no recipients", code="NoRecipients")
        send_at = _format_time(request.send_at)

        async def one(number: str) -> MessageState | ProviderError:
            body: dict[str, Any] = {"to": number, "text": request.text, "send_at": send_at}
            if sender:
                body["from"] = sender
            if self.messaging_profile_id:
                body["messaging_profile_id"] = self.messaging_profile_id
            headers = {IDEMPOTENCY_HEADER: idempotency_key(request.key, number)} if request.key else None
            # With a key, a timeout or 5xx is repeated safely (Telnyx replays its answer);
            # without one, never: it may have been scheduled.
            state: MessageState = await self._http.request(
                "POST", "/messages/schedule", json_body=body, idempotent=headers is not None,
                headers=headers, parse=_schedule_answer,
            )
            if state.send_at is None:  # the payload has no send_at: it is the one we asked for
                state = dataclasses.replace(state, send_at=_parse_time(send_at))
            return state

        return await schedule_each(request.to, one, in_flight=MAX_IN_FLIGHT)

    async def ping(self) -> None:
        await ping_by_lookup(self._http.request("GET", f"/messages/{PING_ID}", idempotent=True))


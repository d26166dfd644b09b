"""Twilio Programmable Messaging (API 2010-04-01): one scheduled Message per recipient, cancelled by SID.

Endpoints (twilio.com/docs/messaging/api/message-resource, /docs/messaging/features/message-scheduling,
and the official `twilio` package's rest/api/v2010/account/message/__init__.py, which this mirrors):
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded: `To`, `Body`,
  `MessagingServiceSid`, `ScheduleType=fixed`, `SendAt` (`YYYY-MM-DDTHH:MM:SSZ`, UTC), optional
  `StatusCallback`. Scheduling works only through a Messaging Service; the answer is the Message resource
  with `status: scheduled`.
- `GET …/Messages/{Sid}.json` → the Message resource. It has no send time field: the bot keeps the
  `SendAt` it asked for.
- `POST …/Messages/{Sid}.json` with `Status=canceled` cancels while the message is `scheduled`; later
  Twilio answers error 30409 "This message cannot be canceled".
Auth is HTTP Basic: the Account SID and Auth Token, or an API key SID and its secret (the path still
names the account). Errors are `{"code": 20404, "message": …, "more_info": …, "status": 404}`; the code
is an integer. A 429 carries code 20429 (too many concurrent requests; never processed, safe to repeat).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
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

PROVIDER = ProviderName.TWILIO.value
API_VERSION = "2010-04-01"
# Twilio limits concurrent REST requests per account (error 20429); stay well under it in one schedule.
MAX_IN_FLIGHT = 10
# A well-formed Message SID no message will ever have: fetching it costs nothing and proves the key.
PING_SID = "SM" + "0" * 32

_STATES: dict[str, SendState] = {
    "scheduled": SendState.SCHEDULED,
    "accepted": SendState.SENDING,
    "queued": SendState.SENDING,
    "sending": SendState.SENDING,
    "sent": SendState.SENT,
    "delivered": SendState.SENT,
    "read": SendState.SENT,
    "partially_delivered": SendState.SENT,
    "undelivered": SendState.FAILED,
    "failed": SendState.FAILED,
    "canceled": SendState.CANCELLED,
}

_NOT_FOUND_CODES = {"20404"}
_AUTH_CODES = {"20003", "20005", "20006"}  # Authenticate; account not active; access denied


def parse_error(response: httpx.Response, body: Any) -> ProviderError:
    """A Twilio error answer (`{code, message, more_info, status}`) → ProviderError."""
    status = response.status_code
    if not isinstance(body, Mapping) or not ("code" in body or "message" in body):
        reason = response.reason_phrase or "error"
        message = f"HTTP {status} {reason}".strip() if body is None else f"HTTP {status}: {str(body)[:120]}"
        return ProviderError(PROVIDER, kind_for_status(status), message, http_status=status)
    code = body.get("code")
    code_text = str(code) if code is not None else None
    message = str(body.get("message") or "").strip() or f"HTTP {status}"
    kind = kind_for_status(status)
    if code_text in _NOT_FOUND_CODES and status < 500:
        kind = ErrorKind.NOT_FOUND
    elif code_text in _AUTH_CODES:
        kind = ErrorKind.AUTH
    elif status == 403:
        kind = ErrorKind.REJECTED  # a permission on one resource, not credentials refused
    return ProviderError(PROVIDER, kind, message, code=code_text, http_status=status)


def _parse_date(value: Any) -> datetime | None:
    """Twilio's resource dates are RFC 2822 (`Thu, 30 Jul 2015 20:12:31 +0000`)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def format_send_at(value: datetime) -> str:
    """`SendAt` as the SDK's serialize.iso8601_datetime writes it: UTC, whole seconds, `Z`."""
    if value.tzinfo is None:  # ScheduleRequest promises UTC; a naive value is read as UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_state(payload: Any, *, expected_sid: str | None = None,
                  send_at: datetime | None = None) -> MessageState:
    """A Message resource → MessageState. `send_at` is what the bot asked for (the resource has none)."""
    if not isinstance(payload, Mapping):
        raise garbage(PROVIDER, f"message is {type(payload).__name__}, not an object")
    sid = payload.get("sid")
    if not isinstance(sid, str) or not sid:
        raise garbage(PROVIDER, "message without a sid")
    if expected_sid is not None and sid != expected_sid:
        raise garbage(PROVIDER, f"asked for {expected_sid}, got {sid}")
    status_word = payload.get("status")
    if not isinstance(status_word, str):
        raise garbage(PROVIDER, "`status` is not a string")
    to = payload.get("to")
    if to is not None and not isinstance(to, str):
        raise garbage(PROVIDER, "`to` is not a string")
    body = payload.get("body")
    return MessageState(
        provider=PROVIDER,
        id=sid,
        state=_STATES.get(status_word.lower(), SendState.UNKNOWN),
        status=status_word,
        send_at=send_at,
        recipients=(to,) if to else (),
        recipient_count=1,
        text=body if isinstance(body, str) else None,
        raw=dict(payload),
    )


class TwilioClient(WithoutMessageGroups):
    """Twilio Programmable Messaging over httpx: schedule, status, cancel, ping."""

    name = ProviderName.TWILIO
    display_name = "Twilio"

    def __init__(
        self,
        account_sid: str,
        *,
        auth_token: str | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        messaging_service_sid: str | None = None,
        status_callback: str | None = None,
        base_url: str = "https://api.twilio.com",
        **connection: Unpack[ConnectionOptions],
    ) -> None:
        if api_key and api_secret:
            username, password = api_key, api_secret
        elif auth_token:
            username, password = account_sid, auth_token
        else:
            raise ValueError("Twilio needs TWILIO_AUTH_TOKEN, or TWILIO_API_KEY and TWILIO_API_SECRET")
        self.account_sid = account_sid
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        basic = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._authorization = f"Basic {basic}"
        self._messages = f"/{API_VERSION}/Accounts/{account_sid}/Messages"
        self._http = ProviderHTTP(
            PROVIDER,
            base_url,
            error_parser=parse_error,
            auth_headers=lambda: {"Authorization": self._authorization},
            **connection,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def status(self, target: str) -> MessageState:
        # parsed inside the counted call: an answer the bot cannot read is `garbage` in the metrics too
        state: MessageState = await self._http.request(
            "GET", f"{self._messages}/{target}.json", idempotent=True, operation="GET /Messages/{sid}.json",
            parse=lambda body: message_state(body, expected_sid=target))
        return state

    async def cancel(self, target: str) -> MessageState:
        # Repeating a cancel is harmless: a second one finds it canceled (30409) and looks.
        return await cancel_or_find_cancelled(
            self._http.request("POST", f"{self._messages}/{target}.json", idempotent=True,
                               form_body={"Status": "canceled"}, operation="POST /Messages/{sid}.json",
                               parse=lambda body: message_state(body, expected_sid=target)),
            lambda: self.status(target))

    async def schedule(self, request: ScheduleRequest) -> ScheduleOutcome:
        if not self.messaging_service_sid:
            raise ProviderError(
                PROVIDER, ErrorKind.REJECTED,
                "no Messaging Service: Twilio schedules only through one; set TWILIO_MESSAGING_SERVICE_SID",
                code="NoMessagingService",
            )
        if not request.to:
            raise ProviderError(PROVIDER, ErrorKind.REJECTED, "no recipients", code="NoRecipients")
        send_at = format_send_at(request.send_at)
        service = self.messaging_service_sid

        async def one(number: str) -> MessageState | ProviderError:
            form = schedule_form(number, request.text, send_at, service, self.status_callback)
            # Not idempotent: a timeout or 5xx may have scheduled it, so never repeat blindly.
            scheduled: MessageState = await self._http.request(
                "POST", f"{self._messages}.json", form_body=form, idempotent=False,
                operation="POST /Messages.json",
                parse=lambda answer: message_state(answer, send_at=request.send_at.astimezone(UTC)))
            return scheduled

        return await schedule_each(request.to, one, in_flight=MAX_IN_FLIGHT)

    async def ping(self) -> None:
        await ping_by_lookup(self._http.request("GET", f"{self._messages}/{PING_SID}.json", idempotent=True,
                                                operation="GET /Messages/{sid}.json"))


def schedule_form(to: str, body: str, send_at: str, messaging_service_sid: str,
                  status_callback: str | None) -> dict[str, str]:
    """The form of one scheduled Message create, with the SDK's parameter names."""
    form = {"To": to, "Body": body, "MessagingServiceSid": messaging_service_sid, "ScheduleType": "fixed",
            "SendAt": send_at}
    if status_callback:
        form["StatusCallback"] = status_callback
    return form


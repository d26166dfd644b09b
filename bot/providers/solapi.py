"""Solapi / CoolSMS v4: scheduled sends are message *groups* (create → add messages → schedule).

Facts this client relies on (design/providers.md §1):
- every request carries `Authorization: HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…`, the
  signature being hex HMAC-SHA256(secret, date + salt); a signature may be used only once, so each
  attempt (retries included) is signed afresh;
- errors are `{"errorCode", "errorMessage"}`, the message often Korean: kept verbatim;
- a group is PENDING until sent (→ SENDING → COMPLETE) or scheduled (→ SCHEDULED); cancelling a
  schedule turns the group FAILED; only a PENDING group can be sent or deleted;
- ids: groups `G4V…`, messages `M4V…` (32 characters).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from bot.clock import Clock, SystemClock
from bot.providers.base import (
    ErrorKind,
    MessageState,
    ProviderError,
    ProviderName,
    ScheduleOutcome,
    ScheduleRequest,
    SendState,
)
from bot.providers.http import ProviderHTTP, RetryPolicy, garbage, kind_for_status, retry_listener

log = logging.getLogger(__name__)

PROVIDER = ProviderName.SOLAPI.value
GROUPS = "/messages/v4/groups"
MAX_MESSAGES_PER_ADD = 10_000  # documented limit of one `PUT …/messages` (RecipientsTooMany, 413)

STATES: dict[str, SendState] = {
    "PENDING": SendState.PENDING,
    "SCHEDULED": SendState.SCHEDULED,
    "SENDING": SendState.SENDING,
    "COMPLETE": SendState.SENT,
    "FAILED": SendState.FAILED,
    "DELETED": SendState.DELETED,
}
# Per-message status codes (documents:api-reference/message-status-codes.md): 2000 accepted,
# 3000 handed to the carrier, 4000 received; any other code is an error at some stage.
GOOD_STATUS_CODES = {"2000", "3000", "4000"}

_MESSAGE_ID = re.compile(r"^M\dV")

def is_message_id(target: str) -> bool:
    """`M4V…` (or the older `M3V…`) is a message; anything else is treated as a group id."""
    return bool(_MESSAGE_ID.match(target))


def sign(api_key: str, api_secret: str, date: str, salt: str) -> str:
    """The Authorization header value for one request."""
    signature = hmac.new(api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={signature}"


def solapi_number(number: str) -> str:
    """Solapi takes Korean numbers in domestic form (`01012345678`); its `country` field is
    documented as not supported. So `+82 10-1234-5678` becomes `01012345678`; other numbers lose
    only their separators."""
    digits = re.sub(r"[\s\-().]", "", number)
    if digits.startswith("+82"):
        rest = digits[3:]
        return rest if rest.startswith("0") else "0" + rest
    return digits


def as_utc(moment: datetime) -> datetime:
    """Timezone-aware UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """`2026-11-24T00:00:00.000Z`, the form Solapi's own samples use."""
    moment = as_utc(moment)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_error(response: httpx.Response, body: Any) -> ProviderError:
    status = response.status_code
    kind = kind_for_status(status)
    if isinstance(body, dict):
        code = body.get("errorCode")
        message = body.get("errorMessage")
        if isinstance(code, str) and code and isinstance(message, str):
            return ProviderError(PROVIDER, kind, message, code=code, http_status=status)
    if body is None:
        what = "an empty body" if not response.content.strip() else "an unreadable body"
        return ProviderError(PROVIDER, kind, f"HTTP {status} with {what}", http_status=status)
    return ProviderError(
        PROVIDER,
        ErrorKind.GARBAGE,
        f"error answer without errorCode/errorMessage: {_short(body)}",
        http_status=status,
    )


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _parse_date(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise garbage(PROVIDER, f"{field} is not a date string: {_short(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise garbage(PROVIDER, f"{field} is not an ISO 8601 date: {_short(value)}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _require_dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise garbage(PROVIDER, f"{what} is not a JSON object: {_short(body)}")
    return body


def _group_state(body: Any, expected_id: str | None = None) -> MessageState:
    group = _require_dict(body, "the group")
    group_id = group.get("groupId", group.get("_id"))
    if not isinstance(group_id, str) or not group_id:
        raise garbage(PROVIDER, f"group without a groupId: {_short(group)}")
    if expected_id is not None and group_id != expected_id:
        raise garbage(PROVIDER, f"asked for group {expected_id}, got {group_id}")
    status = group.get("status")
    if not isinstance(status, str) or not status:
        raise garbage(PROVIDER, f"group {group_id} without a status word: {_short(group.get('status'))}")
    count = group.get("count")
    total = 0
    if count is not None:
        if not isinstance(count, dict):
            raise garbage(PROVIDER, f"group {group_id} count is not an object: {_short(count)}")
        raw_total = count.get("total", 0)
        if isinstance(raw_total, bool) or not isinstance(raw_total, int | str):
            raise garbage(PROVIDER, f"group {group_id} count.total is not a number: {_short(raw_total)}")
        try:
            total = int(raw_total)
        except ValueError:
            raise garbage(PROVIDER, f"group {group_id} count.total is not a number: {raw_total!r}") from None
    return MessageState(
        provider=PROVIDER,
        id=group_id,
        state=STATES.get(status.upper(), SendState.UNKNOWN),
        status=status,
        send_at=_parse_date(group.get("scheduledDate"), "scheduledDate"),
        recipient_count=total,
        raw=group,
    )


def _message_entry(body: Any, message_id: str) -> dict[str, Any]:
    listing = _require_dict(body, "the message list answer")
    messages = listing.get("messageList")
    if not isinstance(messages, dict):
        raise garbage(PROVIDER, f"messageList is not an object: {_short(messages)}")
    entry = messages.get(message_id)
    if entry is None:
        raise ProviderError(
            PROVIDER, ErrorKind.NOT_FOUND, f"no message {message_id} at Solapi", code="ResourceNotFound"
        )
    return _require_dict(entry, f"message {message_id}")


def _message_state(entry: dict[str, Any], message_id: str) -> MessageState:
    status = entry.get("status")
    code = entry.get("statusCode")
    if status is not None and not isinstance(status, str):
        raise garbage(PROVIDER, f"message {message_id} status is not a string: {_short(status)}")
    if code is not None and not isinstance(code, str | int):
        raise garbage(PROVIDER, f"message {message_id} statusCode is not a code: {_short(code)}")
    code_text = None if code is None else str(code)
    if not status and not code_text:
        raise garbage(PROVIDER, f"message {message_id} has neither status nor statusCode")
    state = STATES.get((status or "").upper(), SendState.UNKNOWN)
    if code_text is not None and code_text not in GOOD_STATUS_CODES:
        state = SendState.FAILED
    elif state is SendState.UNKNOWN and code_text == "4000":
        state = SendState.SENT
    to = entry.get("to")
    if isinstance(to, str):
        recipients: tuple[str, ...] = (to,)
    elif isinstance(to, list) and all(isinstance(item, str) for item in to):
        recipients = tuple(to)
    elif to is None:
        recipients = ()
    else:
        raise garbage(PROVIDER, f"message {message_id} `to` is not a number: {_short(to)}")
    text = entry.get("text")
    group_id = entry.get("groupId")
    raw = dict(entry)
    if isinstance(group_id, str):
        raw["groupId"] = group_id
    return MessageState(
        provider=PROVIDER,
        id=message_id,
        state=state,
        status=status or code_text or "",  # verbatim; the statusCode stays in raw
        recipients=recipients,
        recipient_count=len(recipients),
        text=text if isinstance(text, str) else None,
        raw=raw,
    )


class SolapiClient:
    """The Solapi / CoolSMS v4 message-group API, behind the Provider protocol."""

    name: ProviderName = ProviderName.SOLAPI

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        base_url: str = "https://api.solapi.com",
        sender: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self.sender = sender
        self._clock: Clock = clock or SystemClock()
        self._http = ProviderHTTP(
            PROVIDER,
            base_url,
            error_parser=_parse_error,
            auth_headers=self._auth_headers,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retry=retry,
            transport=transport,
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _auth_headers(self) -> Mapping[str, str]:
        """A new date, salt and signature for every attempt: Solapi refuses a reused signature."""
        date = self._clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        salt = secrets.token_hex(16)
        return {"Authorization": sign(self._api_key, self._api_secret, date, salt)}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool,
        parse: Callable[[Any], Any] | None = None,
    ) -> Any:
        return await self._http.request(
            method, path, json_body=json_body, params=params, idempotent=idempotent, parse=parse
        )

    @staticmethod
    def _group_path(group_id: str, suffix: str = "") -> str:
        return f"{GROUPS}/{quote(group_id, safe='')}{suffix}"

    async def _get_group(self, group_id: str) -> MessageState:
        state: MessageState = await self._request("GET", self._group_path(group_id), idempotent=True,
                                                  parse=lambda body: _group_state(body, group_id))
        return state

    async def _get_message(self, message_id: str) -> dict[str, Any]:
        entry: dict[str, Any] = await self._request(
            "GET", "/messages/v4/list", params={"messageId": message_id}, idempotent=True,
            parse=lambda body: _message_entry(body, message_id),
        )
        return entry

    async def _group_only(self, message_id: str, action: str) -> ProviderError:
        """The error for a group-only action asked of one message, naming its group if we can."""
        group_id: str | None = None
        try:
            entry = await self._get_message(message_id)
            found = entry.get("groupId")
            group_id = found if isinstance(found, str) and found else None
        except ProviderError as error:
            log.info("could not look up the group of %s: %s", message_id, error)
        where = f"its group {group_id}" if group_id else "its group (G4V…)"
        return ProviderError(
            PROVIDER,
            ErrorKind.REJECTED,
            f"Solapi can only {action} whole groups, not single messages: "
            f"{action} {where} instead (that {action}s every message in it).",
            code="GroupOnly",
        )

    # -- the Provider protocol ----------------------------------------------------------------

    async def status(self, target: str) -> MessageState:
        if not is_message_id(target):
            return await self._get_group(target)
        entry = await self._get_message(target)
        state = _message_state(entry, target)
        group_id = entry.get("groupId")
        if state.state is SendState.SCHEDULED and isinstance(group_id, str):
            # a message does not carry the scheduled time: its group does
            group = await self._get_group(group_id)
            state = replace(state, send_at=group.send_at)
        return state

    async def cancel(self, target: str) -> MessageState:
        if is_message_id(target):
            raise await self._group_only(target, "cancel")
        watch = RetryWatch()
        try:
            with watch:
                await self._request("DELETE", self._group_path(target, "/schedule"), idempotent=True)
        except ProviderError as error:
            if error.code == "InvalidStatus" and watch.retried:
                # an earlier attempt may have cancelled it (its answer lost): Solapi turns a
                # cancelled group FAILED, so a FAILED group now means the cancel is done
                state = await self._state_or_none(target)
                if state is not None and state.state is SendState.FAILED:
                    return state
            raise
        return await self._get_group(target)

    async def schedule(self, request: ScheduleRequest) -> ScheduleOutcome:
        sender = request.sender or self.sender
        if not sender:
            raise ProviderError(
                PROVIDER,
                ErrorKind.REJECTED,
                "no sender number: set SOLAPI_FROM to a sender number registered at Solapi "
                "(or give one with the request)",
                code="NoSender",
            )
        if not request.to:
            raise ProviderError(
                PROVIDER, ErrorKind.REJECTED, "no recipients to schedule", code="NoRecipients"
            )
        group: MessageState = await self._request("POST", GROUPS, json_body={}, idempotent=False, parse=_group_state)
        group_id = group.id
        messages = [
            {"to": solapi_number(to), "from": solapi_number(sender), "text": request.text}
            for to in request.to
        ]
        registered: list[str] = []
        failed: list[tuple[str, ProviderError]] = []
        step = "add messages"
        try:
            for start in range(0, len(messages), MAX_MESSAGES_PER_ADD):
                chunk = messages[start : start + MAX_MESSAGES_PER_ADD]
                originals = request.to[start : start + MAX_MESSAGES_PER_ADD]
                ok, bad = await self._request(
                    "PUT", self._group_path(group_id, "/messages"), json_body={"messages": chunk},
                    idempotent=False, parse=functools.partial(_registration, originals=originals),
                )
                registered.extend(ok)
                failed.extend(bad)
            if not registered:
                reasons = "; ".join(f"{to}: {error.message}" for to, error in failed[:5])
                raise ProviderError(
                    PROVIDER,
                    ErrorKind.REJECTED,
                    f"Solapi accepted none of the {len(request.to)} recipient(s): {reasons}",
                    code=failed[0][1].code if failed else None,
                )
            step = "schedule"
            answer = await self._request(
                "POST",
                self._group_path(group_id, "/schedule"),
                json_body={"scheduledDate": iso_utc(request.send_at)},
                idempotent=False,
            )
        except ProviderError as error:
            if step == "schedule" and error.outcome_unknown:
                # the schedule may have been taken even though its answer was lost
                state = await self._state_or_none(group_id)
                if state is not None and state.state is SendState.SCHEDULED:
                    return ScheduleOutcome(
                        scheduled=[self._scheduled(state, request, registered)], failed=failed
                    )
            await self._discard(group_id)
            raise
        try:
            state = _group_state(answer, group_id)
        except ProviderError:
            state = MessageState(
                PROVIDER, group_id, SendState.SCHEDULED, "SCHEDULED", send_at=as_utc(request.send_at)
            )
        return ScheduleOutcome(scheduled=[self._scheduled(state, request, registered)], failed=failed)

    @staticmethod
    def _scheduled(state: MessageState, request: ScheduleRequest, registered: list[str]) -> MessageState:
        return MessageState(
            provider=PROVIDER,
            id=state.id,
            state=state.state,
            status=state.status,
            send_at=state.send_at or as_utc(request.send_at),
            recipients=tuple(registered),
            recipient_count=len(registered),
            text=request.text,
            raw=state.raw,
        )

    async def _discard(self, group_id: str) -> None:
        """Delete a half-made (PENDING) group so it cannot be sent by mistake later."""
        try:
            await self._request("DELETE", self._group_path(group_id), idempotent=True)
        except ProviderError as error:
            log.warning("could not delete the half-made Solapi group %s: %s", group_id, error)

    async def _state_or_none(self, group_id: str) -> MessageState | None:
        try:
            return await self._get_group(group_id)
        except ProviderError as error:
            log.info("could not read Solapi group %s: %s", group_id, error)
            return None

    async def send(self, target: str) -> MessageState:
        if is_message_id(target):
            raise await self._group_only(target, "send")
        # not idempotent: a send whose answer is lost is never repeated blindly
        await self._request("POST", self._group_path(target, "/send"), idempotent=False)
        return await self._get_group(target)

    async def delete(self, target: str) -> MessageState:
        if is_message_id(target):
            raise await self._group_only(target, "delete")
        watch = RetryWatch()
        try:
            with watch:
                body = await self._request("DELETE", self._group_path(target), idempotent=True)
        except ProviderError as error:
            if error.code in {"ResourceNotFound", "NotOperationalStatus"} and watch.retried:
                state = await self._state_or_none(target)
                if state is not None and state.state is SendState.DELETED:
                    return state
            raise
        try:
            return _group_state(body, target)
        except ProviderError:
            return await self._get_group(target)

    async def ping(self) -> None:
        def read(body: Any) -> None:
            listing = _require_dict(body, "the group list")
            if not isinstance(listing.get("groupList"), dict | list):
                raise garbage(PROVIDER, f"group list without groupList: {_short(listing)}")

        await self._request("GET", GROUPS, params={"limit": 1}, idempotent=True, parse=read)

    async def aclose(self) -> None:
        await self._http.aclose()


def _registration(
    answer: Any, originals: tuple[str, ...]
) -> tuple[list[str], list[tuple[str, ProviderError]]]:
    """Which recipients Solapi registered, and why the others were refused."""
    body = _require_dict(answer, "the add-messages answer")
    results = body.get("resultList")
    if results is None:
        # no per-message detail: trust errorCount == 0 to mean all were taken
        count = body.get("errorCount", 0)
        if str(count) in {"0", ""}:
            return list(originals), []
        raise garbage(PROVIDER, f"add-messages answer with errors but no resultList: {_short(body)}")
    if not isinstance(results, list) or len(results) != len(originals):
        raise garbage(
            PROVIDER, f"add-messages resultList does not match the messages sent: {_short(results)}"
        )
    ok: list[str] = []
    bad: list[tuple[str, ProviderError]] = []
    for original, result in zip(originals, results, strict=True):
        if not isinstance(result, dict):
            raise garbage(PROVIDER, f"add-messages result is not an object: {_short(result)}")
        code = str(result.get("statusCode", ""))
        if code in GOOD_STATUS_CODES:
            ok.append(original)
        else:
            message = result.get("statusMessage")
            bad.append((
                original,
                ProviderError(
                    PROVIDER,
                    ErrorKind.REJECTED,
                    message.strip() if isinstance(message, str) and message.strip() else f"status {code}",
                    code=code or None,
                ),
            ))
    return ok, bad


class RetryWatch:
    """While active (`with watch:`), notes whether ProviderHTTP repeated a request, through the
    retry listener hook; an outer listener (e.g. the one telling the user) still hears."""

    def __init__(self) -> None:
        self.retried = False
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> RetryWatch:
        outer = retry_listener.get()

        async def note(provider: str, attempt: int, error: ProviderError) -> None:
            self.retried = True
            if outer is not None:
                await outer(provider, attempt, error)

        self._token = retry_listener.set(note)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            retry_listener.reset(self._token)
            self._token = None

"""Solapi / CoolSMS v4: scheduled sends are message *groups* (create → add messages → schedule).

Facts this client relies on (design/providers.md §1):
- every request carries `Authorization: HMAC-SHA256 apiKey=…, date=…, salt=…, signature=…`, the
  signature being hex HMAC-SHA256(secret, date + salt); a signature may be used only once, so each
  attempt (retries included) is signed afresh;
- errors are `{"errorCode", "errorMessage"}`, the message often Korean: kept verbatim, with an English
  explanation beside it when the code or message is a known one (ENGLISH below);
- a recipient is a national number plus `country` (the calling code, "82" when absent), as the
  official SDK's `Message` model sends it;
- a group's recipients are `count.registeredSuccess` (registered, so they will be sent);
  `count.total` also counts the ones refused at registration, and is not always filled;
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
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Unpack
from urllib.parse import quote

import httpx

from bot.domain.clock import Clock, SystemClock
from bot.domain.phones import KOREA, for_solapi
from bot.providers.base import (
    ErrorKind,
    MessageState,
    ProviderError,
    ProviderName,
    ScheduleOutcome,
    ScheduleRequest,
    SendState,
)
from bot.providers.http import ConnectionOptions, ProviderHTTP, garbage, kind_for_status, retry_listener

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


# Solapi's error codes and (Korean) messages the bot knows, in English. A message is looked up
# first (one code, such as InvalidStatus, has several messages), then its code; an unknown one is
# shown as it came. Sources: the Solapi documents (seeds 000-002, authentication/api-key.md,
# message-status-codes.md, scheduleGroupMessage.md) and design/providers.md §1.5.
ENGLISH_BY_MESSAGE: dict[str, str] = {
    "해당 그룹아이디가 존재하지 않습니다.": "there is no group with this id",
    "요청하신 Resource를 찾을수 없습니다.": "the requested resource was not found",
    "유효하지 않은 groupId": "this is not a valid group id",
    "삭제 처리된 그룹으로는 발송이 안됩니다.": "a deleted group cannot be sent",
    "그룹 생성에 실패했던 그룹입니다.\n그룹 로그를 확인해주세요.":
        "this group failed (a cancelled schedule also leaves it FAILED); see the group's log",
    "발송 예약된 그룹이므로 발송이 불가능합니다.": "the group is scheduled, so it cannot be sent now",
    "이미 발송 요청된 그룹입니다.": "a send was already requested for this group",
    "이미 발송이 완료된 그룹입니다.": "this group has already been sent",
    "'PENDING' 상태의 그룹만 전송 가능합니다.": "only a PENDING group can be sent",
    "'SCHEDULED' 상태의 그룹만 취소가 가능합니다.": "only a SCHEDULED group can be cancelled",
    "예약시간은 현재시간보다 늦게 설정 가능합니다.": "the scheduled time must be later than now",
    "발송 예정일이 6개월을 초과하여 발송 예약에 실패하였습니다.":
        "the send date is more than 6 months ahead, so the schedule failed",
    "유효한 API Key가 아님": "not a valid API key",
    "생성한 Signature가 일치하지 않음": "the signature does not match (check SOLAPI_API_SECRET)",
    "시간 값이 서버 시간을 15분 이상 벗어남": "the request's date is more than 15 minutes off Solapi's clock",
    "15분 안에 동일한 signature 값": "the same signature was used twice within 15 minutes",
    "필수 입력 값 미입력": "a required field is missing",
    "중복 수신번호": "this recipient number is listed twice",
    "SMS는 90byte LMS, MMS는 2000byte ATA, CTA는 한/영포함 1000자 CTI는 한/영포함 400자까지 사용 가능 합니다.":
        "too long: SMS up to 90 bytes, LMS and MMS up to 2,000 bytes (EUC-KR)",
}
ENGLISH_BY_PATTERN: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^PENDING 상태의 그룹만 삭제할 수 있습니다\. 현재 상태는 (\w+) 입니다\.$"),
     "only a PENDING group can be deleted; this one is {0}"),
]
ENGLISH_BY_CODE: dict[str, str] = {
    "InvalidAPIKey": "not a valid API key",
    "SignatureDoesNotMatch": "the signature does not match (check SOLAPI_API_SECRET)",
    "RequestTimeTooSkewed": "the request's date is more than 15 minutes off Solapi's clock",
    "DuplicatedSignature": "the same signature was used twice within 15 minutes",
    "ResourceNotFound": "not found",
    "DeletedGroup": "a deleted group cannot be sent",
    "FailedGroup": "this group failed; see the group's log",
    "ScheduledGroup": "the group is scheduled, so it cannot be sent now",
    "GroupInProcessing": "a send was already requested for this group",
    "AlreadySent": "this group has already been sent",
    "InvalidScheduledDate": "the send time must be in the future and at most 6 months ahead",
    "NotEnoughBalance": "the Solapi account's balance is too low",
    "RecipientsTooMany": "too many recipients: at most 10,000 per request and 1,000,000 per group",
    "InactiveApp": "the app is inactive",
    "BlockedApp": "the app is blocked",
    "1022": "the group was not found",
    "1030": "the Solapi account's balance is too low",
}


def explain(code: str | None, message: str) -> str | None:
    """The English meaning of a Solapi error, or None when the bot does not know it."""
    known = ENGLISH_BY_MESSAGE.get(message.strip())
    if known is not None:
        return known
    for pattern, english in ENGLISH_BY_PATTERN:
        match = pattern.match(message.strip())
        if match:
            return english.format(*match.groups())
    return ENGLISH_BY_CODE.get(code or "")


def with_english(code: str | None, message: str) -> str:
    """Solapi's message verbatim, and its English meaning beside it when known."""
    english = explain(code, message)
    if english is None or not re.search(r"[\uac00-\ud7a3]", message):
        return message  # unknown, or already English: as it came
    return f"{message} (in English: {english})"


def recipient_fields(number: str) -> dict[str, str]:
    """`to` (and `country` when not Korea) for one recipient, as Solapi and its SDK want them: an
    E.164 number becomes its national number and calling code; anything else is passed on in
    domestic form for Solapi to judge (the bot's own parser lets only E.164 through)."""
    if number.strip().startswith("+"):
        try:
            national = for_solapi(number.strip())
        except ValueError:  # phonenumbers' NumberParseException is a ValueError
            return {"to": solapi_number(number)}
        if national.country == str(KOREA):
            return {"to": national.to}
        return {"to": national.to, "country": national.country}
    return {"to": solapi_number(number)}


def solapi_number(number: str) -> str:
    """A number in Korean domestic form (`01012345678`): `+82 10-1234-5678` becomes
    `01012345678`; a domestic number (the sender, SOLAPI_FROM) loses only its separators."""
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
            return ProviderError(PROVIDER, kind, with_english(code, message), code=code, http_status=status)
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
        # registeredSuccess counts the recipients that will be sent; total may be 0 while it is 1,
        # and counts the refused registrations too (the SDK's send() compares it to registeredFailed)
        field = "registeredSuccess" if "registeredSuccess" in count else "total"
        raw_total = count.get(field, 0)
        if isinstance(raw_total, bool) or not isinstance(raw_total, int | str):
            raise garbage(PROVIDER, f"group {group_id} count.{field} is not a number: {_short(raw_total)}")
        try:
            total = int(raw_total)
        except ValueError:
            raise garbage(PROVIDER, f"group {group_id} count.{field} is not a number: {raw_total!r}") from None
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
        clock: Clock | None = None,
        **connection: Unpack[ConnectionOptions],
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
            **connection,
        )

    # -- plumbing -----------------------------------------------------------------------------

    def _auth_headers(self) -> Mapping[str, str]:
        """A new date, salt and signature for every attempt: Solapi refuses a reused signature."""
        date = self._clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        salt = secrets.token_hex(16)
        return {"Authorization": sign(self._api_key, self._api_secret, date, salt)}

    @staticmethod
    def _group_path(group_id: str, suffix: str = "") -> str:
        return f"{GROUPS}/{quote(group_id, safe='')}{suffix}"

    async def _get_group(self, group_id: str) -> MessageState:
        state: MessageState = await self._http.request("GET", self._group_path(group_id), idempotent=True,
                                                       parse=lambda body: _group_state(body, group_id))
        return state

    async def _get_message(self, message_id: str) -> dict[str, Any]:
        entry: dict[str, Any] = await self._http.request(
            # list-old: the path the official SDK's get_messages reads (answer: messageList by id)
            "GET", "/messages/v4/list-old", params={"messageId": message_id}, idempotent=True,
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
                await self._http.request("DELETE", self._group_path(target, "/schedule"), idempotent=True)
        except ProviderError as error:
            if error.code == "InvalidStatus" and watch.retried:
                # an earlier attempt may have cancelled it (its answer lost): Solapi turns a
                # cancelled group FAILED, so a FAILED group now means the cancel is done
                state = await self._state_or_none(target)
                if state is not None and state.state is SendState.FAILED:
                    return state
            raise
        return await self._get_group(target)

    async def reschedule_group(self, target: str, send_at: datetime) -> MessageState:
        """Give a SCHEDULED group a new send time: the same `POST …/schedule` that scheduled it. Not a
        cancel first: a cancelled group turns FAILED, and only a PENDING (or SCHEDULED) group may be
        scheduled, so cancel-then-schedule would leave it cancelled. Setting the same date twice is
        harmless, so a lost answer may be asked again."""
        if is_message_id(target):
            raise await self._group_only(target, "reschedule")
        await self._http.request("POST", self._group_path(target, "/schedule"),
                            json_body={"scheduledDate": iso_utc(send_at)}, idempotent=True)
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
        # A timeout here leaves at most an empty PENDING group, which Solapi never sends; the error
        # keeps its outcome_unknown kind all the same, as nothing can be read to settle it.
        group: MessageState = await self._http.request("POST", GROUPS, json_body={}, idempotent=False,
                                                       parse=_group_state)
        group_id = group.id
        # From here on the group's id is known, so every doubt is settled by reading that group.
        messages = [
            recipient_fields(to) | {"from": solapi_number(sender), "text": request.text} for to in request.to
        ]
        registered: list[str] = []
        failed: list[tuple[str, ProviderError]] = []
        try:
            for start in range(0, len(messages), MAX_MESSAGES_PER_ADD):
                chunk = messages[start : start + MAX_MESSAGES_PER_ADD]
                originals = request.to[start : start + MAX_MESSAGES_PER_ADD]
                ok, bad = await self._http.request(
                    "PUT", self._group_path(group_id, "/messages"), json_body={"messages": chunk},
                    idempotent=False, parse=functools.partial(_registration, originals=originals),
                )
                registered.extend(ok)
                failed.extend(bad)
        except ProviderError as error:
            discarded = await self._discard(group_id)
            if not error.outcome_unknown:
                raise
            # the schedule request was never sent: whatever the lost answer said, nothing goes out
            left = ("the bot deleted it" if discarded else
                    "it is left PENDING, which Solapi never sends by itself")
            raise ProviderError(
                PROVIDER, ErrorKind.REJECTED,
                f"Solapi did not answer while the recipients were added to group {group_id} "
                f"({error.message}); nothing was scheduled and {left}. Schedule again.",
                code="NotScheduled", http_status=error.http_status,
            ) from error
        if not registered:
            await self._discard(group_id)
            reasons = "; ".join(f"{to}: {error.message}" for to, error in failed[:5])
            raise ProviderError(
                PROVIDER,
                ErrorKind.REJECTED,
                f"Solapi accepted none of the {len(request.to)} recipient(s): {reasons}",
                code=failed[0][1].code if failed else None,
            )
        try:
            answer = await self._http.request(
                "POST",
                self._group_path(group_id, "/schedule"),
                json_body={"scheduledDate": iso_utc(request.send_at)},
                idempotent=False,
            )
        except ProviderError as error:
            if not error.outcome_unknown:
                await self._discard(group_id)
                raise
            state = await self._settle_schedule(group_id, error)
            return ScheduleOutcome(scheduled=[self._scheduled(state, request, registered)], failed=failed)
        try:
            state = _group_state(answer, group_id)
        except ProviderError:
            state = MessageState(
                PROVIDER, group_id, SendState.SCHEDULED, "SCHEDULED", send_at=as_utc(request.send_at)
            )
        return ScheduleOutcome(scheduled=[self._scheduled(state, request, registered)], failed=failed)

    async def _settle_schedule(self, group_id: str, error: ProviderError) -> MessageState:
        """The schedule request's answer was lost (a timeout, a 5xx, an unreadable body): read the
        group. Taken → its state. Still PENDING (or unreadable) → delete it, so a late schedule
        cannot take effect, and say surely "not scheduled"; a refused delete means the schedule
        took, so read again. Still unreadable → an error that keeps the outcome unknown and names
        the group to check."""
        state = await self._state_or_none(group_id)
        if state is None or state.state is SendState.PENDING:
            # deleting settles it either way: deleted, nothing goes out; refused, the schedule took
            if await self._discard(group_id):
                raise ProviderError(
                    PROVIDER, ErrorKind.REJECTED,
                    f"Solapi did not answer the schedule of group {group_id} ({error.message}); the group "
                    "was still PENDING, so the bot deleted it: nothing will be sent. Schedule again.",
                    code="NotScheduled", http_status=error.http_status,
                ) from error
            state = await self._state_or_none(group_id)  # not deletable: the schedule took, or unreadable
        if state is not None and state.state in {SendState.SCHEDULED, SendState.SENDING, SendState.SENT}:
            return state
        if state is not None and state.state in {SendState.FAILED, SendState.DELETED}:
            raise ProviderError(
                PROVIDER, ErrorKind.REJECTED,
                f"Solapi did not answer the schedule of group {group_id} ({error.message}); the group is "
                f"now {state.status}, so nothing will be sent.",
                code="NotScheduled", http_status=error.http_status,
            ) from error
        raise ProviderError(
            PROVIDER, error.kind,
            f"Solapi did not answer the schedule of group {group_id} ({error.message}) and the group could "
            f"not be read afterwards: it may be scheduled. `/sms status {group_id}` tells.",
            code=error.code, http_status=error.http_status, retry_after=error.retry_after,
        ) from error

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

    async def _discard(self, group_id: str) -> bool:
        """Delete a half-made (PENDING) group so it cannot be sent by mistake later; True if it is
        now deleted."""
        try:
            await self.delete(group_id)
        except ProviderError as error:
            log.warning("could not delete the half-made Solapi group %s: %s", group_id, error)
            return False
        return True

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
        await self._http.request("POST", self._group_path(target, "/send"), idempotent=False)
        return await self._get_group(target)

    async def delete(self, target: str) -> MessageState:
        if is_message_id(target):
            raise await self._group_only(target, "delete")
        watch = RetryWatch()
        try:
            with watch:
                body = await self._http.request("DELETE", self._group_path(target), idempotent=True)
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

        await self._http.request("GET", GROUPS, params={"limit": 1}, idempotent=True, parse=read)

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
                    with_english(code, message.strip())
                    if isinstance(message, str) and message.strip() else f"status {code}",
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

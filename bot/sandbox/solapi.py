"""A stateful fake of the Solapi / CoolSMS v4 message-group API, over real HTTP.

Faithful to design/providers.md §1 and the Solapi documents (seeds 000-002): HMAC auth with its
four 403 codes, the group state machine and its error bodies verbatim, the documented limits.
Where the documents give no wording, the fake says so in a comment ("not documented").

    fake = FakeSolapi(now=clock.now).start()
    client = SolapiClient(fake.api_key, fake.api_secret, base_url=fake.url, clock=clock)
    group_id = fake.add_group(status="SCHEDULED", recipients=["01012345678"])
    ...
    assert fake.calls("POST", "/send") == 1
    fake.stop()
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import json
import math
import re
import secrets
import string
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.sandbox.server import FakeServer, LocalService, RecordedRequest

KST = timezone(timedelta(hours=9))
SKEW = timedelta(minutes=15)  # RequestTimeTooSkewed beyond this; signatures remembered this long
MAX_MESSAGES_PER_ADD = 10_000
MAX_MESSAGES_PER_GROUP = 1_000_000
ACCOUNT_ID = "12925149"  # the account id in the documents' samples
GROUP_ID = re.compile(r"^G4V\d{14}[A-Z0-9]{15}$")
ID_ALPHABET = string.ascii_uppercase + string.digits

# Error bodies, verbatim from the documents where they give them.
NOT_FOUND_GROUP = "해당 그룹아이디가 존재하지 않습니다."  # seeds 000, 002
NOT_FOUND_RESOURCE = "요청하신 Resource를 찾을수 없습니다."  # seed 001
INVALID_GROUP_ID = "유효하지 않은 groupId"  # seed 001
SEND_ERRORS: dict[str, tuple[int, str, str]] = {  # seed 002
    "DELETED": (400, "DeletedGroup", "삭제 처리된 그룹으로는 발송이 안됩니다."),
    "FAILED": (400, "FailedGroup", "그룹 생성에 실패했던 그룹입니다.\n그룹 로그를 확인해주세요."),
    "SCHEDULED": (409, "ScheduledGroup", "발송 예약된 그룹이므로 발송이 불가능합니다."),
    "SENDING": (409, "GroupInProcessing", "이미 발송 요청된 그룹입니다."),
    "COMPLETE": (409, "AlreadySent", "이미 발송이 완료된 그룹입니다."),
}
SEND_ONLY_PENDING = "'PENDING' 상태의 그룹만 전송 가능합니다."  # seed 002
CANCEL_ONLY_SCHEDULED = "'SCHEDULED' 상태의 그룹만 취소가 가능합니다."  # seed 000
CANCELLED = "메시지 예약이 성공적으로 취소됐습니다."  # seed 000
DELETE_ONLY_PENDING = "PENDING 상태의 그룹만 삭제할 수 있습니다. 현재 상태는 {status} 입니다."  # seed 001
# From the group log of documents:api-reference/messages/groups/scheduleGroupMessage.md
SCHEDULE_IN_PAST = "예약시간은 현재시간보다 늦게 설정 가능합니다."
SCHEDULE_TOO_FAR = "발송 예정일이 6개월을 초과하여 발송 예약에 실패하였습니다."
SCHEDULED_OK = "메시지 예약이 성공적으로 접수됐습니다."
# documents:authentication/api-key.md (the descriptions of the four codes)
AUTH_ERRORS = {
    "InvalidAPIKey": "유효한 API Key가 아님",
    "SignatureDoesNotMatch": "생성한 Signature가 일치하지 않음",
    "RequestTimeTooSkewed": "시간 값이 서버 시간을 15분 이상 벗어남",
    "DuplicatedSignature": "15분 안에 동일한 signature 값",
}
# Per-message status codes (documents:api-reference/message-status-codes.md)
ACCEPTED = ("2000", "정상 접수(이통사로 접수 예정) ")  # trailing space as in the documents' sample
MISSING_FIELD = ("1010", "필수 입력 값 미입력")
FORMAT_ERROR = ("1011", "Format Error")
DUPLICATE_TO = ("1026", "중복 수신번호")
TOO_LONG = (
    "1031",
    "SMS는 90byte LMS, MMS는 2000byte ATA, CTA는 한/영포함 1000자 "
    "CTI는 한/영포함 400자까지 사용 가능 합니다.",
)


class SolapiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass
class LostAnswer:
    """The fake acts on the request, then answers `status` instead of its real answer."""

    method: str
    path_contains: str
    status: int = 500
    times: int | None = 1
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return self.method.upper() == method.upper() and self.path_contains in path


def iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """Calendar months, on Solapi's Korean calendar (its ids and dates are KST)."""
    moment = moment.astimezone(KST)
    month = moment.month - 1 + months
    year = moment.year + month // 12
    month = month % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _counts() -> dict[str, int]:
    keys = (
        "total",
        "sentTotal",
        "sentFailed",
        "sentSuccess",
        "sentPending",
        "sentReplacement",
        "refund",
        "registeredFailed",
        "registeredSuccess",
    )
    return dict.fromkeys(keys, 0)


def _cash() -> dict[str, int]:
    return {"requested": 0, "replacement": 0, "refund": 0, "sum": 0}


def _messages_of(body: Any) -> list[Any]:
    """The `messages` of an add-messages or send-many request: 1 to 10,000 of them, else Solapi's refusal."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise SolapiError(400, "ValidationError", "messages 는 1개 이상의 메시지 배열이어야 합니다.")
    if len(messages) > MAX_MESSAGES_PER_ADD:
        raise SolapiError(
            413, "RecipientsTooMany", "하나의 요청에 수신번호는 10,000 개를 넘을 수 없습니다."
        )
    return messages


class FakeSolapi(LocalService):
    """The fake API. State lives in `groups` and `messages` (Solapi's own JSON shapes)."""

    def __init__(
        self,
        api_key: str = "NCSFAKEAPIKEY0001",
        api_secret: str = "FAKESECRETFAKESECRETFAKESECRET01",
        now: Callable[[], datetime] | None = None,
        rate_limit: tuple[int, float] | None = None,
        *,
        sending_for: timedelta = timedelta(seconds=5),
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.rate_limit = rate_limit
        self.sending_for = sending_for  # how long a sent group stays SENDING before COMPLETE
        self.balance = 10_000.0  # won, for GET /cash/v1/balance
        self.groups: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, dict[str, Any]] = {}
        self.group_message_ids: dict[str, list[str]] = {}
        self.lost_answers: list[LostAnswer] = []
        self._signatures: dict[str, datetime] = {}
        self._hits: deque[float] = deque()
        self._lock = threading.RLock()
        v4 = "/messages/v4"
        routes = [
            Route(f"{v4}/groups", self._endpoint(self._list_groups), methods=["GET"]),
            Route(f"{v4}/groups", self._endpoint(self._create_group), methods=["POST"]),
            Route(f"{v4}/groups/{{group_id}}", self._endpoint(self._get_group), methods=["GET"]),
            Route(f"{v4}/groups/{{group_id}}", self._endpoint(self._delete_group), methods=["DELETE"]),
            Route(f"{v4}/groups/{{group_id}}/messages", self._endpoint(self._add_messages), methods=["PUT"]),
            Route(
                f"{v4}/groups/{{group_id}}/messages", self._endpoint(self._group_messages), methods=["GET"]
            ),
            Route(f"{v4}/groups/{{group_id}}/schedule", self._endpoint(self._schedule), methods=["POST"]),
            Route(f"{v4}/groups/{{group_id}}/schedule", self._endpoint(self._cancel), methods=["DELETE"]),
            Route(f"{v4}/groups/{{group_id}}/send", self._endpoint(self._send), methods=["POST"]),
            Route(f"{v4}/list", self._endpoint(self._list_messages), methods=["GET"]),
            # the official Python SDK (solapi 5.0.3, get_messages) reads this path, same answer shape
            Route(f"{v4}/list-old", self._endpoint(self._list_messages), methods=["GET"]),
            Route("/cash/v1/balance", self._endpoint(self._balance), methods=["GET"]),
            Route(f"{v4}/send-many/detail", self._endpoint(self._send_many), methods=["POST"]),
            Route(
                "/{path:path}",
                self._endpoint(self._no_route),
                methods=["GET", "POST", "PUT", "DELETE", "PATCH"],
            ),
        ]
        self.app = Starlette(routes=routes)
        self.server = FakeServer(self.app)

    # -- lifecycle and test helpers ----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.server.requests

    def calls(self, method: str, path_contains: str = "") -> int:
        """How many requests with this method and path fragment reached the server (faults included)."""
        return len(self.server.requests_to(method.upper(), path_contains))

    def lose_answer(
        self, method: str, path_contains: str, *, status: int = 500, times: int | None = 1
    ) -> LostAnswer:
        """Do what the request asks, then answer `status` instead: the client cannot know it worked."""
        lost = LostAnswer(method, path_contains, status, times)
        with self._lock:
            self.lost_answers.append(lost)
        return lost

    def group(self, group_id: str) -> dict[str, Any]:
        """The group as a GET would show it now (scheduled and sending groups move on with time)."""
        with self._lock:
            self._advance()
            return self.groups[group_id]

    def messages_of(self, group_id: str) -> list[dict[str, Any]]:
        with self._lock:
            self._advance()
            return [self.messages[mid] for mid in self.group_message_ids.get(group_id, [])]

    def add_group(
        self,
        status: str = "SCHEDULED",
        scheduled_at: datetime | None = None,
        recipients: Iterable[str] = ("01012345678",),
        text: str = "테스트 메시지입니다",
        sender: str = "029302266",
    ) -> str:
        """Put a group straight into `status` (PENDING, SCHEDULED, SENDING, COMPLETE, FAILED,
        DELETED) with one message per recipient; returns its id."""
        status = status.upper()
        if status not in {"PENDING", "SCHEDULED", "SENDING", "COMPLETE", "FAILED", "DELETED"}:
            raise ValueError(f"not a Solapi group status: {status}")
        now = self.now()
        with self._lock:
            group = self._new_group(now)
            gid = group["groupId"]
            self._register(group, [{"to": to, "from": sender, "text": text} for to in recipients], now)
            if status == "SCHEDULED":
                when = scheduled_at or now + timedelta(days=1)
                self._set_scheduled(group, when, now)
            elif status == "SENDING":
                self._set_sending(group, now)
            elif status == "COMPLETE":
                if scheduled_at is not None:
                    group["scheduledDate"] = iso(scheduled_at)
                self._set_sending(group, scheduled_at or now - timedelta(hours=1))
                self._set_complete(group, now)
            elif status == "FAILED":
                if scheduled_at is not None:
                    group["scheduledDate"] = iso(scheduled_at)
                self._set_status(group, "FAILED", now, "메시지 예약이 취소되었습니다.")
            elif status == "DELETED":
                self._set_status(group, "DELETED", now, "메시지 그룹이 삭제되었습니다.")
            return str(gid)

    def reschedule(self, group_id: str, when: datetime) -> None:
        """Move a SCHEDULED group to another time, as someone would in Solapi's console."""
        with self._lock:
            self._set_scheduled(self.groups[group_id], when, self.now())

    def complete(self, group_id: str) -> None:
        """Finish a SENDING or SCHEDULED group now."""
        with self._lock:
            group = self.groups[group_id]
            if group["status"] == "SCHEDULED":
                self._set_sending(group, self.now())
            self._set_complete(group, self.now())

    # -- request plumbing ---------------------------------------------------------------------

    def _endpoint(
        self, handler: Callable[[Request], Awaitable[Any]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                self._check_rate()
                self._check_auth(request.headers.get("authorization"))
                body = await handler(request)
            except SolapiError as error:
                return JSONResponse(
                    {"errorCode": error.code, "errorMessage": error.message},
                    status_code=error.status,
                    headers=error.headers,
                )
            with self._lock:
                for lost in self.lost_answers:
                    if lost.matches(request.method, request.url.path):
                        lost.hits += 1
                        return JSONResponse(
                            {
                                "errorCode": "InternalError",
                                "errorMessage": "fake: the request was carried out, its answer lost",
                            },
                            status_code=lost.status,
                        )
                return JSONResponse(body)  # serialised under the lock: the state is shared

        return endpoint

    def _check_rate(self) -> None:
        if self.rate_limit is None:
            return
        limit, window = self.rate_limit
        with self._lock:
            now = time.monotonic()
            while self._hits and self._hits[0] <= now - window:
                self._hits.popleft()
            if len(self._hits) >= limit:
                wait = max(1, math.ceil(self._hits[0] + window - now))
                # Solapi documents no request rate limit: code and wording are the fake's own.
                raise SolapiError(
                    429,
                    "TooManyRequests",
                    f"too many requests: at most {limit} per {window:g}s",
                    headers={"Retry-After": str(wait)},
                )
            self._hits.append(now)

    def _check_auth(self, header: str | None) -> None:
        # The documents give no code for a missing or malformed header: "InvalidAuthorization" is
        # the fake's own. The four documented codes are used where the documents say.
        if not header:
            raise SolapiError(403, "InvalidAuthorization", "Authorization 헤더가 없습니다.")
        method, _, rest = header.strip().partition(" ")
        digests = {"HMAC-SHA256": hashlib.sha256, "HMAC-MD5": hashlib.md5}
        digest = digests.get(method.upper())
        if digest is None:
            raise SolapiError(403, "InvalidAuthorization", f"지원하지 않는 인증 방식입니다: {method}")
        fields: dict[str, str] = {}
        for piece in rest.split(","):
            key, sep, value = piece.strip().partition("=")
            if sep:
                fields[key.strip().lower()] = value.strip()  # the SDKs disagree on key case
        missing = [k for k in ("apikey", "date", "salt", "signature") if not fields.get(k)]
        if missing:
            raise SolapiError(
                403, "InvalidAuthorization", f"Authorization 헤더에 {', '.join(missing)} 값이 없습니다."
            )
        if not hmac.compare_digest(fields["apikey"], self.api_key):
            raise SolapiError(403, "InvalidAPIKey", AUTH_ERRORS["InvalidAPIKey"])
        try:
            signed_at = parse_iso(fields["date"])
        except ValueError:
            raise SolapiError(403, "InvalidAuthorization", "date 값이 ISO 8601 형식이 아닙니다.") from None
        now = self.now()
        if abs(now - signed_at) > SKEW:
            raise SolapiError(403, "RequestTimeTooSkewed", AUTH_ERRORS["RequestTimeTooSkewed"])
        salt = fields["salt"]
        if not 12 <= len(salt.encode()) <= 64:
            raise SolapiError(403, "InvalidAuthorization", "salt 는 12~64 바이트의 문자열이어야 합니다.")
        expected = hmac.new(self.api_secret.encode(), (fields["date"] + salt).encode(), digest).hexdigest()
        signature = fields["signature"].lower()
        if not hmac.compare_digest(expected, signature):
            raise SolapiError(403, "SignatureDoesNotMatch", AUTH_ERRORS["SignatureDoesNotMatch"])
        with self._lock:
            for old, seen in list(self._signatures.items()):
                if now - seen > SKEW:
                    del self._signatures[old]
            if signature in self._signatures:
                raise SolapiError(403, "DuplicatedSignature", AUTH_ERRORS["DuplicatedSignature"])
            self._signatures[signature] = now

    @staticmethod
    async def _json(request: Request) -> Any:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise SolapiError(400, "ValidationError", "요청 본문이 올바른 JSON 형식이 아닙니다.") from None

    def _existing(self, request: Request) -> dict[str, Any]:
        gid = request.path_params["group_id"]
        if not GROUP_ID.match(gid):
            raise SolapiError(400, "ValidationError", INVALID_GROUP_ID)
        group = self.groups.get(gid)
        if group is None:
            raise SolapiError(404, "ResourceNotFound", NOT_FOUND_GROUP)
        return group

    # -- state --------------------------------------------------------------------------------

    def _new_id(self, prefix: str, now: datetime, taken: dict[str, Any]) -> str:
        stamp = now.astimezone(KST).strftime("%Y%m%d%H%M%S")
        while True:
            candidate = prefix + stamp + "".join(secrets.choice(ID_ALPHABET) for _ in range(15))
            if candidate not in taken:
                return candidate

    def _new_group(self, now: datetime, options: dict[str, Any] | None = None) -> dict[str, Any]:
        options = options or {}
        gid = self._new_id("G4V", now, self.groups)
        group: dict[str, Any] = {
            "count": _counts(),
            "countForCharge": {"sms": {}, "lms": {}, "mms": {}, "ata": {}, "cta": {}},
            "balance": _cash(),
            "point": _cash(),
            "app": {
                "profit": {"sms": 0, "lms": 0, "mms": 0, "ata": 0, "cta": 0},
                "appId": options.get("appId"),
                "version": None,
            },
            "sdkVersion": options.get("sdkVersion"),
            "osPlatform": options.get("osPlatform"),
            "log": [{"message": "메시지 그룹이 생성되었습니다.", "createAt": iso(now)}],
            "status": "PENDING",
            "scheduledDate": None,
            "dateSent": None,
            "dateCompleted": None,
            "isRefunded": False,
            "flagUpdated": False,
            "allowDuplicates": bool(options.get("allowDuplicates", False)),
            "accountId": ACCOUNT_ID,
            "masterAccountId": None,  # the SDK's GroupMessageResponse requires the key (null allowed)
            "apiVersion": "4",
            "groupId": gid,
            "price": {},
            "dateCreated": iso(now),
            "dateUpdated": iso(now),
            "_id": gid,
        }
        self.groups[gid] = group
        self.group_message_ids[gid] = []
        return group

    def _register(self, group: dict[str, Any], messages: list[Any], now: datetime) -> list[dict[str, Any]]:
        """Add messages; the ones that fail registration are kept but will not be sent."""
        gid = group["groupId"]
        taken = {(self.messages[mid]["country"], self.messages[mid]["to"]) for mid in self.group_message_ids[gid]}
        results: list[dict[str, Any]] = []
        added: dict[tuple[str, str], int] = {}
        for item in messages:
            message = item if isinstance(item, dict) else {}
            to = message.get("to")
            sender = message.get("from")
            text = message.get("text")
            to_digits = re.sub(r"-", "", to) if isinstance(to, str) else ""
            from_digits = re.sub(r"-", "", sender) if isinstance(sender, str) else ""
            # `country` is the calling code without +, "82" when absent (the SDK's Message model);
            # `to` is the national number: a `+` in it is a format error, as the SDK never sends one
            country = message.get("country", "82")
            country = str(country) if isinstance(country, str | int) else ""
            kind = str(message.get("type") or "").upper()
            # bytes in EUC-KR, every Hangul syllable 2 (CP949, as Korean phones count), anything
            # it cannot encode 1 (a `?`): see bot/domain/text_limits.py for what rests on the documents
            size = len(text.encode("cp949", errors="replace")) if isinstance(text, str) else 0
            if not kind:
                kind = "SMS" if size <= 90 else "LMS"
            if not to_digits or not from_digits or not isinstance(text, str) or not text:
                code, why = MISSING_FIELD
            elif not to_digits.isdigit() or not from_digits.isdigit() or not country.isdigit():
                code, why = FORMAT_ERROR
            elif size > 2000:
                code, why = TOO_LONG
            elif (country, to_digits) in taken and not group["allowDuplicates"]:
                code, why = DUPLICATE_TO
            else:
                code, why = ACCEPTED
                taken.add((country, to_digits))
            mid = self._new_id("M4V", now, self.messages)
            record = {
                "messageId": mid,
                "groupId": gid,
                "type": kind,
                "country": country or "82",
                "to": to_digits or to,
                "from": from_digits or sender,
                "text": text,
                "accountId": ACCOUNT_ID,
                "status": "PENDING" if code == ACCEPTED[0] else "FAILED",
                "statusCode": code,
                "statusMessage": why,
                "reason": None if code == ACCEPTED[0] else why,
                "dateCreated": iso(now),
                "dateUpdated": iso(now),
                "dateProcessed": None,
                "dateReceived": None,
                "_id": mid,
            }
            self.messages[mid] = record
            self.group_message_ids[gid].append(mid)
            count = group["count"]
            count["total"] += 1
            if code == ACCEPTED[0]:
                count["registeredSuccess"] += 1
                added[(country, kind)] = added.get((country, kind), 0) + 1
                charge = group["countForCharge"].setdefault(kind.lower(), {})
                charge[country] = charge.get(country, 0) + 1
            else:
                count["registeredFailed"] += 1
            results.append(
                {
                    key: record[key]
                    for key in ("to", "from", "type", "country", "messageId", "statusCode", "accountId")
                }
                | {"statusMessage": why}
            )
        names = {"SMS": "단문문자(SMS)", "LMS": "장문문자(LMS)"}
        for (country, kind), n in added.items():
            group["log"].append(
                {
                    "message": f"국가코드({country})의 {names.get(kind, kind)} {n} 건이 추가되었습니다.",
                    "createAt": iso(now),
                }
            )
        group["dateUpdated"] = iso(now)
        return results

    def _each_message(self, group: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
        for mid in self.group_message_ids.get(group["groupId"], []):
            message = self.messages[mid]
            if message["statusCode"] in {ACCEPTED[0], "3000"}:
                change(message)

    def _set_status(self, group: dict[str, Any], status: str, now: datetime, log: str) -> None:
        group["status"] = status
        group["dateUpdated"] = iso(now)
        group["log"].append({"message": log, "createAt": iso(now)})
        self._each_message(group, lambda m: m.update(status=status, dateUpdated=iso(now)))

    def _set_scheduled(self, group: dict[str, Any], when: datetime, now: datetime) -> None:
        group["scheduledDate"] = iso(when)
        self._set_status(group, "SCHEDULED", now, SCHEDULED_OK)
        group["log"][-1]["messageCount"] = dict(group["count"])

    def _set_sending(self, group: dict[str, Any], at: datetime) -> None:
        group["dateSent"] = iso(at)
        self._set_status(group, "SENDING", at, "메시지 발송 요청이 접수되었습니다.")
        group["count"]["sentPending"] = group["count"]["registeredSuccess"]
        self._each_message(
            group, lambda m: m.update(statusCode="3000", statusMessage="이통사로 접수(리포트를 기다리는 중)")
        )

    def _set_complete(self, group: dict[str, Any], at: datetime) -> None:
        count = group["count"]
        count["sentTotal"] = count["sentSuccess"] = count["registeredSuccess"]
        count["sentPending"] = 0
        group["dateCompleted"] = iso(at)
        self._set_status(group, "COMPLETE", at, "메시지 발송이 완료되었습니다.")
        self._each_message(
            group, lambda m: m.update(statusCode="4000", statusMessage="수신 완료", dateReceived=iso(at))
        )

    def _advance(self) -> None:
        """Scheduled groups whose time has come are sent; sending groups finish."""
        now = self.now()
        for group in self.groups.values():
            if group["status"] == "SCHEDULED" and parse_iso(group["scheduledDate"]) <= now:
                when = parse_iso(group["scheduledDate"])
                self._set_sending(group, when)
                self._set_complete(group, max(when, now))
            elif group["status"] == "SENDING" and parse_iso(group["dateSent"]) + self.sending_for <= now:
                self._set_complete(group, now)

    # -- endpoints ----------------------------------------------------------------------------

    async def _no_route(self, request: Request) -> Any:
        raise SolapiError(404, "ResourceNotFound", NOT_FOUND_RESOURCE)

    async def _create_group(self, request: Request) -> Any:
        body = await self._json(request)
        if not isinstance(body, dict):
            raise SolapiError(400, "ValidationError", "요청 본문은 객체여야 합니다.")
        with self._lock:
            return self._new_group(self.now(), body)

    async def _get_group(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            return self._existing(request)

    async def _list_groups(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            groups = sorted(
                self.groups.values(), key=lambda g: (g["dateCreated"], g["groupId"]), reverse=True
            )
            groups = self._filter(request, groups)
            return self._listing(request, groups, "groupId", "groupList")

    async def _group_messages(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            group = self._existing(request)
            items = [self.messages[mid] for mid in self.group_message_ids[group["groupId"]]]
            return self._listing(request, items, "messageId", "messageList")

    async def _list_messages(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            items = list(self.messages.values())
            query = request.query_params
            if query.get("messageId"):
                items = [m for m in items if m["messageId"] == query["messageId"]]
            if query.get("groupId"):
                items = [m for m in items if m["groupId"] == query["groupId"]]
            for key in ("to", "from", "type", "statusCode"):
                if query.get(key):
                    items = [m for m in items if str(m.get(key)) == query[key]]
            items = self._filter(request, items)
            return self._listing(request, items, "messageId", "messageList")

    @staticmethod
    def _filter(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """criteria=a,b&cond=eq,eq&value=x,y (only `eq` is supported by the fake)."""
        query = request.query_params
        if not query.get("criteria"):
            return items
        criteria = query["criteria"].split(",")
        conds = query.get("cond", "").split(",")
        values = query.get("value", "").split(",")
        if not (len(criteria) == len(conds) == len(values)):
            raise SolapiError(400, "ValidationError", "criteria, cond, value 의 개수가 일치하지 않습니다.")
        for key, cond, value in zip(criteria, conds, values, strict=True):
            if cond != "eq":
                raise SolapiError(400, "ValidationError", f"fake: unsupported cond {cond!r}")
            items = [item for item in items if str(item.get(key)) == value]
        return items

    @staticmethod
    def _limit(request: Request) -> int:
        raw = request.query_params.get("limit", "20")
        try:
            limit = int(raw)
        except ValueError:
            raise SolapiError(400, "ValidationError", "limit 는 숫자여야 합니다.") from None
        if not 1 <= limit <= 500:
            raise SolapiError(400, "ValidationError", "limit 는 1 이상 500 이하여야 합니다.")
        return limit

    def _listing(self, request: Request, items: list[dict[str, Any]], key: str, list_field: str) -> dict[str, Any]:
        """One page of a list answer, as every Solapi list endpoint pages: by `startKey` and `limit`, the
        page keyed by each item's `key`."""
        page, start, nxt = self._page(request, items, key)
        return {
            "startKey": start,
            "limit": self._limit(request),
            "nextKey": nxt,
            list_field: {item[key]: item for item in page},
        }

    def _page(
        self, request: Request, items: list[dict[str, Any]], key: str
    ) -> tuple[list[dict[str, Any]], str | None, str | None]:
        limit = self._limit(request)
        start_key = request.query_params.get("startKey") or None
        begin = 0
        if start_key is not None:
            ids = [item[key] for item in items]
            begin = ids.index(start_key) if start_key in ids else len(items)
        page = items[begin : begin + limit]
        nxt = items[begin + limit][key] if begin + limit < len(items) else None
        return page, start_key, nxt

    async def _add_messages(self, request: Request) -> Any:
        body = await self._json(request)
        messages = _messages_of(body)
        with self._lock:
            self._advance()
            group = self._existing(request)
            if group["status"] != "PENDING":
                # not documented word for word: "messages cannot be added or removed while scheduled"
                raise SolapiError(
                    400, "InvalidStatus", "'PENDING' 상태의 그룹에만 메시지를 추가할 수 있습니다."
                )
            if group["count"]["total"] + len(messages) > MAX_MESSAGES_PER_GROUP:
                raise SolapiError(
                    413, "RecipientsTooMany", "하나의 그룹에 담을 수 있는 메시지는 1,000,000 개 제한입니다."
                )
            results = self._register(group, messages, self.now())
            errors = sum(1 for r in results if r["statusCode"] != ACCEPTED[0])
            return {"errorCount": errors, "resultList": results}

    def _valid_schedule_date(self, body: Any, now: datetime) -> datetime:
        raw = body.get("scheduledDate") if isinstance(body, dict) else None
        if not isinstance(raw, str):
            raise SolapiError(400, "ValidationError", "scheduledDate 는 필수 입력 값입니다.")
        try:
            when = parse_iso(raw)
        except ValueError:
            raise SolapiError(400, "ValidationError", "scheduledDate 는 날짜 형식이어야 합니다.") from None
        if when <= now:
            raise SolapiError(400, "InvalidScheduledDate", SCHEDULE_IN_PAST)
        if when > add_months(now, 6):
            raise SolapiError(400, "InvalidScheduledDate", SCHEDULE_TOO_FAR)
        return when

    async def _schedule(self, request: Request) -> Any:
        body = await self._json(request)
        with self._lock:
            self._advance()
            group = self._existing(request)
            now = self.now()
            if group["status"] not in {"PENDING", "SCHEDULED"}:
                # wording not documented; a SCHEDULED group may be given a new date
                raise SolapiError(400, "InvalidStatus", "'PENDING' 상태의 그룹만 예약 가능합니다.")
            when = self._valid_schedule_date(body, now)
            self._set_scheduled(group, when, now)
            return group

    async def _cancel(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            group = self._existing(request)
            if group["status"] != "SCHEDULED":
                raise SolapiError(400, "InvalidStatus", CANCEL_ONLY_SCHEDULED)
            now = self.now()
            self._set_status(group, "FAILED", now, CANCELLED)
            # The old CoolSMS page (seed 000) shows {createAt, message}; the official SDK
            # (cancel_scheduled_message) parses the answer as the group, so the fake answers that.
            return group

    async def _balance(self, request: Request) -> Any:
        """The account's balance (the SDK's get_balance): the fake account always has some."""
        return {"balance": self.balance, "point": 0}

    async def _send(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            group = self._existing(request)
            status = group["status"]
            if status in SEND_ERRORS:
                code, name, message = SEND_ERRORS[status]
                raise SolapiError(code, name, message)
            if status != "PENDING":
                raise SolapiError(400, "InvalidStatus", SEND_ONLY_PENDING)
            self._set_sending(group, self.now())
            return group

    async def _delete_group(self, request: Request) -> Any:
        with self._lock:
            self._advance()
            group = self._existing(request)
            if group["status"] != "PENDING":
                raise SolapiError(
                    400, "NotOperationalStatus", DELETE_ONLY_PENDING.format(status=group["status"])
                )
            self._set_status(group, "DELETED", self.now(), "메시지 그룹이 삭제되었습니다.")
            return group

    async def _send_many(self, request: Request) -> Any:
        """One-shot: create a group, add the messages, then schedule or send it."""
        body = await self._json(request)
        messages = _messages_of(body)
        with self._lock:
            now = self.now()
            when = self._valid_schedule_date(body, now) if body.get("scheduledDate") else None
            group = self._new_group(now, {"allowDuplicates": body.get("allowDuplicates", False)})
            results = self._register(group, messages, now)
            if when is not None:
                self._set_scheduled(group, when, now)
            elif group["count"]["registeredSuccess"]:
                self._set_sending(group, now)
            failed = [r for r in results if r["statusCode"] != ACCEPTED[0]]
            answer: dict[str, Any] = {"groupInfo": group, "failedMessageList": failed}
            if body.get("showMessageList"):
                answer["messageList"] = [
                    {
                        "messageId": r["messageId"],
                        "statusCode": r["statusCode"],
                        "statusMessage": r["statusMessage"],
                    }
                    for r in results
                    if r["statusCode"] == ACCEPTED[0]
                ]
            return answer

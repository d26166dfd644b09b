"""A fake HighLevel (LeadConnector) Conversations API, Version 2021-04-15, over real HTTP.

What it does like HighLevel (GoHighLevel/highlevel-api-docs apps/conversations.json, design/providers.md §2):
- `Authorization: Bearer <token>`, else 401 UnauthorizedDTO; `Version: 2021-04-15` (or `v3`, the v3 spec's
  value: a deviation listed in bot/sandbox/deviations.py) required, else 400; the email cancel path, which
  declares no Version, takes any.
- Every request is checked against the unmodified conversations.json; the problems a deviation in
  bot/sandbox/deviations.py excuses (SendMessageBodyDto's generator-made `required`) are not counted, any
  other is a violation answered 422 UnprocessableDTO.
- `POST /conversations/messages` `{type, contactId, message, scheduledTimestamp}` → 200
  `{conversationId, messageId, status: "pending"}`; ids are 20-character alphanumerics.
- `DELETE /conversations/messages/{id}/schedule` → HTTP 200 `{"status": 200, "message": …}` when the
  message was scheduled, else HTTP 200 `{"status": 404, "message": "Failed cancel the scheduled message"}`.
- Burst rate limit (100 per 10 s by default) with `X-RateLimit-Max`, `X-RateLimit-Remaining`,
  `X-RateLimit-Interval-Milliseconds` (and the daily pair) on every answer; 429 past it.
Chosen where no source says (documented in bot/providers/highlevel.py too):
- A cancelled scheduled message is deleted: GET answers it, like any unknown id, 400 "Message not found"
  (the spec documents only 400/401 for GET). The fake keeps it in `.messages` with status "cancelled"
  so tests can see what happened.
- GET does not show the schedule time: GetMessageResponseDto lists no `scheduledTimestamp` (nor does
  the SDK's model), so the fake keeps it to itself.
- Scheduled emails (`POST … {type: "Email", …, scheduledTimestamp}` → `emailMessageId`) are cancelled
  on their own path `DELETE /conversations/messages/email/{id}/schedule`; the SMS cancel path answers
  the "Failed cancel" body for them. GET of an email message id shows `messageType: "TYPE_EMAIL"`.
- The daily quota: `daily_remaining` (settable); at 0 every request is 429 with
  `X-RateLimit-Daily-Remaining: 0`.
- `scheduledTimestamp` in the past is 400 "Scheduled time must be in the future"; an unknown contact is
  400 "Contact not found"; a 429 body is `{"statusCode": 429, "message": "Too many requests"}`.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.sandbox import deviations
from bot.sandbox.server import FakeServer, LocalService, Receive, Scope, Send
from bot.sandbox.telnyx import FixedWindow, SpecValidation, iso, load_spec, read_body, reply, request_headers, utcnow

DEFAULT_TOKEN = "pit-0c1d2e3f-4a5b-4c6d-8e7f-90a1b2c3d4e5"
DEFAULT_LOCATION = "ve9EPM428h8vShlRW1KT"
API_VERSION = "2021-04-15"
HL_SPEC = "highlevel/apps/conversations.json"
_ALPHABET = string.ascii_letters + string.digits
_CONTACT = re.compile(r"^[A-Za-z0-9]{6,40}$")
_MESSAGE = re.compile(r"^/conversations/messages/([^/]+)$")
_CANCEL = re.compile(r"^/conversations/messages/([^/]+)/schedule$")
_CANCEL_EMAIL = re.compile(r"^/conversations/messages/email/([^/]+)/schedule$")
# The scope each route needs (highlevel-api-docs apps/conversations.json `security`).
ROUTE_SCOPES = {
    "schedule": "conversations/message.write",
    "cancel": "conversations/message.write",
    "cancel_email": "conversations/message.write",
    "get": "conversations/message.readonly",
    "search": "conversations.readonly",
}
FAILED_CANCEL = {"status": 404, "message": "Failed cancel the scheduled message"}


def new_id() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(20))


class FakeHighLevel(SpecValidation, LocalService):
    """HighLevel Conversations on http://127.0.0.1:<port>. Tests read `.messages` and `.spec_violations`."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        now: Callable[[], datetime] | None = None,
        rate_limit: tuple[int, float] | None = (100, 10.0),
        *,
        location_id: str = DEFAULT_LOCATION,
        contacts: Iterable[str] | None = None,
        scopes: Iterable[str] | None = None,
    ) -> None:
        self.token = token
        # None: the token may do anything; a set: only what those scopes allow (ROUTE_SCOPES)
        self.scopes: set[str] | None = set(scopes) if scopes is not None else None
        self.now: Callable[[], datetime] = now or utcnow
        self.location_id = location_id
        # None: any plausible contact id exists; a set: only those do.
        self.contacts: set[str] | None = set(contacts) if contacts is not None else None
        self.messages: dict[str, dict[str, Any]] = {}
        self.spec_violations: list[dict[str, Any]] = []
        self.tolerated: list[str] = []  # the deviations (bot/sandbox/deviations.py) requests relied on
        self.unvalidated = 0
        self.deliver_as = "delivered"
        self._conversations: dict[str, str] = {}
        self._spec = load_spec(HL_SPEC, "https://services.leadconnectorhq.com", "highlevel")
        self._limiter = FixedWindow(*rate_limit) if rate_limit else None
        self.daily_remaining = 200_000
        self._lock = threading.Lock()
        self.server = FakeServer(self._app)

    # -- lifecycle and addresses

    @property
    def base_url(self) -> str:
        return self.server.url

    # -- state helpers for tests

    def add_message(
        self,
        status: str = "scheduled",
        scheduled_at: datetime | None = None,
        contact_id: str = "cT9kQ2mN4pR6sV8xZ1aB",
        text: str = "Hello from smsops",
    ) -> str:
        """Put a message straight into the fake's state (no HTTP); returns its 20-character id."""
        when = scheduled_at or (self.now() + timedelta(hours=1))
        with self._lock:
            message = self._new_message(contact_id, text, when, status)
            self.messages[message["id"]] = message
        return str(message["id"])

    def status_of(self, message_id: str) -> str:
        with self._lock:
            message = self.messages[message_id]
            self._advance(message)
            return str(message["status"])

    # -- the HTTP app

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        method = scope["method"].upper()
        path = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        headers = request_headers(scope)
        extra: dict[str, str] = {}
        if self._limiter is not None:
            allowed, remaining, _reset = self._limiter.hit()
            with self._lock:
                daily_spent = self.daily_remaining <= 0
                self.daily_remaining = max(0, self.daily_remaining - 1)
                daily = self.daily_remaining
            allowed = allowed and not daily_spent
            extra = {
                "X-RateLimit-Max": str(self._limiter.limit),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Interval-Milliseconds": str(int(self._limiter.seconds * 1000)),
                "X-RateLimit-Limit-Daily": "200000",
                "X-RateLimit-Daily-Remaining": str(daily),
            }
            if not allowed:
                await reply(send, 429, {"statusCode": 429, "message": "Too many requests"}, extra)
                return
        status, payload = self._handle(method, path, query, headers, body)
        self._validate_response(method, path, query, headers, body, status, payload)
        await reply(send, status, payload, extra)

    def _handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {
                "statusCode": 401,
                "message": "Invalid token: access token is invalid",
                "error": "Unauthorized",
            }
        cancel_email = _CANCEL_EMAIL.match(path)
        version = headers.get("version")
        accepted = {API_VERSION} | deviations.accepted_header_values("highlevel", method, path, "version")
        # The email cancel path declares no Version header (nor security) in the spec: any is accepted.
        if not cancel_email and version not in accepted:
            message = (
                "version header is required" if version is None else f"version {version!r} is not supported"
            )
            self._violation(method, path, [{"message": f"Version: {message}", "pointer": ""}])
            return 400, {"statusCode": 400, "message": message}
        cancel = None if cancel_email else _CANCEL.match(path)
        single = _MESSAGE.match(path)
        if method == "POST" and path == "/conversations/messages":
            route = "schedule"
        elif method == "DELETE" and cancel_email:
            route = "cancel_email"
        elif method == "DELETE" and cancel:
            route = "cancel"
        elif method == "GET" and single:
            route = "get"
        elif method == "GET" and path == "/conversations/search":
            route = "search"
        else:  # NestJS's own answer for an unknown route
            return 404, {"statusCode": 404, "message": f"Cannot {method} {path}", "error": "Not Found"}
        needed = ROUTE_SCOPES[route]
        if self.scopes is not None and needed not in self.scopes:
            return 401, {"statusCode": 401, "message": "The token is not authorized for this scope.",
                         "error": "Unauthorized"}
        problems = self._validate(method, path, query, headers, body)
        if problems:
            return 422, {
                "statusCode": 422,
                "message": [p["message"] for p in problems],
                "error": "Unprocessable Entity",
            }
        with self._lock:
            if route == "schedule":
                return self._schedule(body)
            if route == "search":
                return self._search(query)
            matched = cancel_email or cancel or single
            assert matched is not None
            message_id = matched.group(1)
            record = self.messages.get(message_id)
            if record is not None:
                self._advance(record)
            if route == "get":
                if record is None or record["status"] == "cancelled":
                    return 400, {"statusCode": 400, "message": "Message not found"}
                return 200, _public(record)
            is_email = record is not None and record["messageType"] == "TYPE_EMAIL"
            if record is None or record["status"] != "scheduled" or is_email != (route == "cancel_email"):
                return 200, dict(FAILED_CANCEL)
            record["status"] = "cancelled"
            record["dateUpdated"] = iso(self.now())
            return 200, {"status": 200, "message": "Scheduled message cancelled successfully"}

    def _answer_is_checked(self, method: str, path: str, status: int) -> bool:
        """Answers the bot's requests cannot get past validation for (401, unknown routes, refused requests)
        are the fake's own and skipped."""
        return status not in (401, 404, 422, 429)

    def _schedule(self, raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"statusCode": 400, "message": "Unexpected token in JSON", "error": "Bad Request"}
        if not isinstance(body, dict):
            return 400, {"statusCode": 400, "message": "Bad Request"}
        contact = body.get("contactId")
        if (
            not isinstance(contact, str)
            or not _CONTACT.match(contact)
            or (self.contacts is not None and contact not in self.contacts)
        ):
            return 400, {"statusCode": 400, "message": "Contact not found"}
        if body.get("type") not in ("SMS", "Email"):
            return 400, {"statusCode": 400, "message": "This fake schedules SMS and Email only"}
        email = body.get("type") == "Email"
        text = body.get("message") or (body.get("html") if body.get("type") == "Email" else None)
        if not isinstance(text, str) or not text.strip():
            return 400, {"statusCode": 400, "message": "Message body is required for SMS"}
        stamp = body.get("scheduledTimestamp")
        when: datetime | None = None
        if stamp is not None:
            when = datetime.fromtimestamp(float(stamp), tz=UTC)
            if when <= self.now():
                return 400, {"statusCode": 400, "message": "Scheduled time must be in the future"}
        message = self._new_message(contact, text, when, "scheduled" if when else "pending")
        if email:
            message["messageType"], message["type"] = "TYPE_EMAIL", 3
        self.messages[message["id"]] = message
        answer = {"conversationId": message["conversationId"], "messageId": message["id"], "status": "pending"}
        if email:
            answer["emailMessageId"] = message["id"]
        return 200, answer

    def _search(self, query: str) -> tuple[int, Any]:
        from urllib.parse import parse_qs

        location = parse_qs(query).get("locationId", [""])[0]
        if location != self.location_id:
            return 403, {
                "statusCode": 403,
                "message": "The token does not have access to this location.",
                "error": "Forbidden",
            }
        return 200, {"conversations": [], "total": 0}

    def _advance(self, message: dict[str, Any]) -> None:
        """Time moves on: scheduled → delivered once the time has passed; pending → delivered at once."""
        if message["status"] == "pending" or (
            message["status"] == "scheduled" and message["scheduledTimestamp"] <= self.now().timestamp()
        ):
            message["status"] = self.deliver_as
            message["dateUpdated"] = iso(self.now())

    def _new_message(self, contact: str, text: str, when: datetime | None, status: str) -> dict[str, Any]:
        conversation = self._conversations.setdefault(contact, new_id())
        return {
            "id": new_id(),
            "type": 2,
            "messageType": "TYPE_SMS",
            "locationId": self.location_id,
            "contactId": contact,
            "conversationId": conversation,
            "dateAdded": iso(self.now()),
            "dateUpdated": iso(self.now()),
            "body": text,
            "direction": "outbound",
            "status": status,
            "contentType": "text/plain",
            "attachments": [],
            "source": "api",
            "scheduledTimestamp": int(when.timestamp()) if when else None,
        }


def _public(message: dict[str, Any]) -> dict[str, Any]:
    shown = json.loads(json.dumps(message))
    shown.pop("scheduledTimestamp", None)  # GetMessageResponseDto has no such field: kept to the fake
    return shown

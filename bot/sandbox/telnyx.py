"""A fake Telnyx Messaging v2 over real HTTP, every request checked against the OpenAPI spec.

What it does like Telnyx (team-telnyx/openapi spec3.yml @4f3a6bd8 and the docs in design/providers.md §3):
- `Authorization: Bearer <key>`, else 401 `{"errors":[{"code":"10009","title":"Authentication failed"}]}`.
- `POST /v2/messages/schedule` (and `POST /v2/messages` with `send_at`): `send_at` at least 5 minutes and at
  most 5 days ahead; answer `{data: OutboundMessagePayload}` with `to[0].status = "scheduled"`.
- `GET /v2/messages/{id}` → `{data: …}`; a scheduled message whose `send_at` has passed is delivered
  when next read.
- `DELETE /v2/messages/{id}` → the cancelled payload at the top level; only `status=scheduled` with
  `send_at` more than a minute ahead, otherwise 403 with a bare error object (as the spec types it).
- Ids are UUIDs; a non-UUID id is 400 code 10006 "Invalid ID"; an unknown one 404 code 10005.
- `rate_limit=(n, seconds)`: a fixed window; `x-ratelimit-*` headers on every answer, 429 code 10011.
- `Idempotency-Key` on the POSTs (developers.telnyx.com/docs/development/api-fundamentals/idempotency):
  a key matching `^[A-Za-z0-9_:-]{1,255}$`; a record per (key, method, path); only a successful answer is
  replayed, for 24 hours (by the fake's clock); the same key with another query or a body not
  byte-for-byte identical is 422 while the record exists. Listed in bot/sandbox/deviations.py (the spec
  subset does not declare the header).
- The message payload has no `send_at` (neither OutboundMessagePayload in the spec nor the SDK's
  Message lists it): the fake keeps each message's send time to itself.
Invented where no source says (kept plausible): the codes/titles for a bad `send_at` (10015), a
non-cancellable message (403, 10015 "Message cannot be cancelled"), a bad `to` (40310), a missing
sender (40305).

The module also holds the small OpenAPI and rate-limit helpers the HighLevel fake uses.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from bot.sandbox import deviations
from bot.sandbox.server import FakeServer, LocalService, Receive, Scope, Send

# ---------------------------------------------------------------- shared helpers (also for HighLevel)

SPECS_ENV = "SMSOPS_SPECS_DIR"


def specs_dir() -> Path | None:
    """Where the API specs are: $SMSOPS_SPECS_DIR, else the copies in the checkout's tests/specs. An
    installed package has neither (and no openapi-core): its simulators then check nothing against them."""
    override = os.environ.get(SPECS_ENV)
    if override:
        return Path(override) if Path(override).is_dir() else None
    checkout = Path(__file__).resolve().parents[2]  # bot/sandbox/telnyx.py → the repository
    vendored = checkout / "tests" / "specs"  # copies, see its README
    return vendored if vendored.is_dir() and (checkout / "pyproject.toml").is_file() else None


class SpecCheck:
    """Validates one recorded HTTP request against an OpenAPI document (openapi-core)."""

    def __init__(self, app: Any, host_url: str, provider: str = "") -> None:
        self._app = app
        self._host_url = host_url
        self.provider = provider

    def check(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[list[dict[str, str]], list[str]]:
        """(violations, the deviations tolerated): the spec's problems with this request, less those a
        deviation in bot/sandbox/deviations.py lists, which is the only place a departure may be excused."""
        used: list[str] = []
        header = deviations.header_deviation(self.provider, method, path, headers)
        if header is not None:
            used.append(header.what)
        shown = deviations.headers_to_validate(self.provider, method, path, headers)
        problems: list[dict[str, str]] = []
        for problem in self.violations(method, path, query, shown, body):
            excuse = deviations.tolerated(self.provider, method, path, problem["message"])
            if excuse is None:
                problems.append(problem)
            elif excuse.what not in used:
                used.append(excuse.what)
        return problems, used

    def check_response(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, status: int,
        payload: Any,
    ) -> tuple[list[dict[str, str]], list[str]]:
        """(violations, the deviations tolerated) of the fake's own answer to a valid request: the answer
        must be one the spec documents for that operation and status, in the shape it declares (so a
        fake cannot answer what no real client would be able to parse)."""
        from openapi_core.exceptions import OpenAPIError
        from openapi_core.testing import MockRequest, MockResponse

        request = MockRequest(
            self._host_url, method.lower(), path, args=dict(parse_qsl(query, keep_blank_values=True)),
            headers=dict(deviations.headers_to_validate(self.provider, method, path, headers)), data=body,
            content_type=headers.get("content-type", "application/json").split(";")[0].strip(),
        )
        response = MockResponse(json.dumps(payload).encode() if payload is not None else b"", status_code=status,
                                content_type="application/json")
        try:
            self._app.validate_response(request, response)
        except OpenAPIError as error:
            found = _describe(error) or [{"message": str(error) or type(error).__name__, "pointer": ""}]
        else:
            return [], []
        problems: list[dict[str, str]] = []
        used: list[str] = []
        for problem in found:
            excuse = deviations.tolerated(self.provider, method, path, "response: " + problem["message"])
            if excuse is None:
                problems.append({**problem, "message": f"response {status}: {problem['message']}"})
            elif excuse.what not in used:
                used.append(excuse.what)
        return problems, used

    def violations(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> list[dict[str, str]]:
        """`[]` when valid, else one `{"message", "pointer"}` per problem found."""
        from openapi_core.exceptions import OpenAPIError
        from openapi_core.testing import MockRequest

        request = MockRequest(
            self._host_url,
            method.lower(),
            path,
            args=dict(parse_qsl(query, keep_blank_values=True)),
            headers=dict(headers),
            data=body,
            content_type=headers.get("content-type", "application/json").split(";")[0].strip(),
        )
        try:
            self._app.validate_request(request)
        except OpenAPIError as error:
            return _describe(error) or [{"message": str(error) or type(error).__name__, "pointer": ""}]
        return []


def _describe(error: BaseException, seen: set[int] | None = None) -> list[dict[str, str]]:
    """Flatten openapi-core's nested errors into readable messages with a JSON pointer."""
    seen = seen if seen is not None else set()
    if id(error) in seen:
        return []
    seen.add(id(error))
    found: list[dict[str, str]] = []
    for schema_error in getattr(error, "schema_errors", None) or []:
        name = getattr(error, "name", None)
        for leaf in _closest_branch(schema_error):
            pointer = "/" + "/".join(str(part) for part in leaf.absolute_path)
            found.append({"message": f"{name + ': ' if name else ''}{leaf.message}", "pointer": pointer})
    for sub in getattr(error, "errors", None) or []:
        if isinstance(sub, BaseException):
            found.extend(_describe(sub, seen))
    if error.__cause__ is not None:
        found.extend(_describe(error.__cause__, seen))
    if not found and error.__cause__ is None and str(error):
        found.append({"message": str(error), "pointer": ""})
    return found


def _closest_branch(schema_error: Any) -> list[Any]:
    """A oneOf/anyOf failure says only "not valid under any of the given schemas": report instead the
    errors of the branch the value came closest to (fewest errors), which say what is actually wrong."""
    context = list(getattr(schema_error, "context", None) or [])
    if not context:
        return [schema_error]
    branches: dict[Any, list[Any]] = {}
    for sub in context:
        branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
    closest = min(branches.values(), key=len)
    return [leaf for sub in closest for leaf in _closest_branch(sub)]


@lru_cache(maxsize=4)
def load_spec(relative: str, host_url: str, provider: str = "") -> SpecCheck | None:
    """Load an unmodified spec once per process (None when the specs or openapi-core are not there).
    `provider` names the entries of bot/sandbox/deviations.py that `SpecCheck.check` consults."""
    base = specs_dir()
    if base is None or not (base / relative).is_file():
        return None
    try:
        from openapi_core import Config, OpenAPI
    except ImportError:
        return None
    path = base / relative
    if path.suffix == ".json":
        document = json.loads(path.read_text(encoding="utf-8"))
        app = OpenAPI.from_dict(
            document, base_uri=path.resolve().as_uri(), config=Config(spec_validator_cls=None)
        )
    else:
        app = OpenAPI.from_file_path(str(path))
    return SpecCheck(app, host_url, provider)


class SpecValidation:
    """For a fake whose provider publishes an OpenAPI spec (Telnyx, HighLevel): checks its requests and
    answers against it, keeping for the tests what was found (`spec_violations`), the deviations relied on
    (`tolerated`) and the requests that went unchecked because the spec was not found (`unvalidated`)."""

    _spec: SpecCheck | None
    _lock: threading.Lock
    spec_violations: list[dict[str, Any]]
    tolerated: list[str]
    unvalidated: int

    @property
    def validating(self) -> bool:
        """True when requests are checked against the OpenAPI spec (the spec file was found)."""
        return self._spec is not None

    def _validate(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> list[dict[str, str]]:
        if self._spec is None:
            with self._lock:
                self.unvalidated += 1
            return []
        problems, used = self._spec.check(method, path, query, headers, body)
        with self._lock:
            self.tolerated.extend(used)
        if problems:
            self._violation(method, path, problems)
        return problems

    def _validate_response(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, status: int,
        payload: Any,
    ) -> None:
        """The fake's answers are checked against the spec too: what a real client must be able to parse."""
        if self._spec is None or not self._answer_is_checked(method, path, status):
            return
        problems, used = self._spec.check_response(method, path, query, headers, body, status, payload)
        with self._lock:
            self.tolerated.extend(used)
        if problems:
            self._violation(method, path, problems)

    def _answer_is_checked(self, method: str, path: str, status: int) -> bool:
        """Which answers the spec can judge: each fake says."""
        raise NotImplementedError

    def _violation(self, method: str, path: str, problems: list[dict[str, str]]) -> None:
        with self._lock:
            self.spec_violations.append({"method": method, "path": path, "errors": problems})


class FixedWindow:
    """A fixed-window rate limiter: `limit` requests per `seconds` (real time, not the fake clock)."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._count = 0

    def hit(self) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window resets)."""
        with self._lock:
            now = time.monotonic()
            if now - self._start >= self.seconds:
                self._start, self._count = now, 0
            self._count += 1
            remaining = max(0, self.limit - self._count)
            return self._count <= self.limit, remaining, max(0.0, self._start + self.seconds - now)


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return body
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def reply(send: Send, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
    data = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
    raw = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(data)).encode()),
    ]
    raw += [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


def request_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- the Telnyx fake

DEFAULT_KEY = "KEY0190FAKE5EB1A6B4C1D2E3F4A5B6C7D8_smsopsFakeTelnyxKey"
TELNYX_SPEC = "telnyx-messaging.yml"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ALPHA_SENDER = re.compile(r"^[A-Za-z0-9 ]{1,11}$")
_MESSAGE_PATH = re.compile(r"^/v2/messages/([^/]+)$")
_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


def _error(code: str, title: str, detail: str = "", pointer: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": code, "title": title}
    if detail:
        entry["detail"] = detail
    if pointer is not None:
        entry["source"] = {"pointer": pointer}
    return entry


def _errors(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"errors": list(entries)}


def _encoding_and_parts(text: str) -> tuple[str, int]:
    if all(ch in _GSM7 for ch in text):
        return "GSM-7", 1 if len(text) <= 160 else math.ceil(len(text) / 153)
    units = len(text.encode("utf-16-le")) // 2
    return "UCS-2", 1 if units <= 70 else math.ceil(units / 67)


class FakeTelnyx(SpecValidation, LocalService):
    """Telnyx Messaging v2 on http://127.0.0.1:<port>/v2. Tests read `.messages` and `.spec_violations`."""

    def __init__(
        self,
        api_key: str = DEFAULT_KEY,
        now: Callable[[], datetime] | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.api_key = api_key
        self.now: Callable[[], datetime] = now or utcnow
        self.messages: dict[str, dict[str, Any]] = {}
        self.spec_violations: list[dict[str, Any]] = []
        self.tolerated: list[str] = []  # the deviations (bot/sandbox/deviations.py) requests relied on
        self.unvalidated = 0  # requests that went through without a spec check (specs not found)
        self.deliver_as = "delivered"  # what a scheduled message becomes once its send_at has passed
        self._sent_now: set[str] = set()  # sent without send_at: queued, then delivered when next read
        self.organization_id = str(uuid.uuid4())
        self.default_profile_id = "40017f8e-49bd-4f16-9e3d-ef103f916228"
        self._spec = load_spec(TELNYX_SPEC, "https://api.telnyx.com", "telnyx")
        self._limiter = FixedWindow(*rate_limit) if rate_limit else None
        self._lock = threading.Lock()
        self._send_at: dict[str, datetime | None] = {}  # not in the payload: the spec lists no send_at
        # (key, method, path) → (query, body, when stored, status, answer): Telnyx's idempotency records
        self._idempotency: dict[tuple[str, str, str], tuple[str, bytes, datetime, int, Any]] = {}
        self.server = FakeServer(self._app)

    # -- lifecycle and addresses

    @property
    def base_url(self) -> str:
        return self.server.url + "/v2"

    # -- state helpers for tests

    def add_message(
        self,
        status: str = "scheduled",
        send_at: datetime | None = None,
        to: str = "+18665550001",
        text: str = "Hello from smsops",
        from_: str = "+18445550001",
    ) -> str:
        """Put a message straight into the fake's state (no HTTP); returns its id."""
        when = send_at or (self.now() + timedelta(hours=1))
        message = self._new_message(to=to, text=text, sender=from_, profile=None, send_at=when, status=status)
        with self._lock:
            self.messages[message["id"]] = message
            self._send_at[message["id"]] = when
        return str(message["id"])

    def send_at_of(self, message_id: str) -> datetime | None:
        """The send time the fake keeps for a message (Telnyx shows none in the payload)."""
        return self._send_at.get(message_id)

    def status_of(self, message_id: str) -> str:
        """The fake's status word for a message (to[0].status), as it stands now."""
        with self._lock:
            message = self.messages[message_id]
            self._advance(message)
            return str(message["to"][0]["status"])

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
            allowed, remaining, reset = self._limiter.hit()
            extra = {
                "x-ratelimit-limit": str(self._limiter.limit),
                "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-reset": str(max(1, math.ceil(reset))),
            }
            if not allowed:
                await reply(
                    send,
                    429,
                    _errors(
                        _error(
                            "10011",
                            "Too many requests",
                            "You have exceeded the rate limit. Please retry later.",
                        )
                    ),
                    extra,
                )
                return
        status, payload = self._handle(method, path, query, headers, body)
        self._validate_response(method, path, query, headers, body, status, payload)
        await reply(send, status, payload, extra)

    def _handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _errors(
                _error(
                    "10009",
                    "Authentication failed",
                    "The API key looks malformed or is not valid for this account.",
                )
            )
        single = _MESSAGE_PATH.match(path)
        route: str | None = None
        if path in ("/v2/messages/schedule", "/v2/messages") and method == "POST":
            route = "schedule"
        elif single and method in ("GET", "DELETE") and single.group(1) != "schedule":
            route = method.lower()
            message_id = single.group(1)
            if not _UUID.match(message_id):
                self._violation(
                    method, path, [{"message": f"id: {message_id!r} is not a 'uuid'", "pointer": ""}]
                )
                return 400, _errors(_error("10006", "Invalid ID", "The id provided is not a valid UUID."))
        if route is None:
            return 404, _errors(
                _error("10005", "Resource not found", "The requested resource or URL could not be found.")
            )
        problems = self._validate(method, path, query, headers, body)
        if problems:
            return 422, _errors(
                *[_error("10015", "Invalid request", p["message"], p["pointer"] or None) for p in problems]
            )
        with self._lock:
            if route == "schedule":
                key = headers.get("idempotency-key")
                if key is None:
                    return self._schedule(path, body)
                return self._idempotent(key, method, path, query, body)
            assert single is not None
            message_id = single.group(1).lower()
            message = self.messages.get(message_id)
            if route == "get":
                if message is None:
                    return 404, _errors(
                        _error(
                            "10005", "Resource not found", "The requested resource or URL could not be found."
                        )
                    )
                self._advance(message)
                return 200, {"data": json.loads(json.dumps(message))}
            return self._cancel(message)

    def _answer_is_checked(self, method: str, path: str, status: int) -> bool:
        """Answers to requests the spec covers are checked."""
        return status != 401 and self._validated_request(method, path)

    @staticmethod
    def _validated_request(method: str, path: str) -> bool:
        return (method == "POST" and path in ("/v2/messages/schedule", "/v2/messages")) or (
            method in ("GET", "DELETE") and _MESSAGE_PATH.match(path) is not None)

    def _idempotent(self, key: str, method: str, path: str, query: str, body: bytes) -> tuple[int, Any]:
        """Telnyx's Idempotency-Key: replay a stored success, refuse a changed request, else act."""
        if not re.match(r"^[A-Za-z0-9_:-]{1,255}$", key):
            return 422, _errors(_error("10015", "Invalid Idempotency-Key",
                                       "Keys must contain 1 to 255 letters, numbers, hyphens, underscores, "
                                       "or colons."))
        record_id = (key, method, path)
        record = self._idempotency.get(record_id)
        if record is not None and self.now() - record[2] > timedelta(hours=24):
            record = None
            del self._idempotency[record_id]
        if record is not None:
            stored_query, stored_body, _, status, answer = record
            if stored_query != query or stored_body != body:
                return 422, _errors(_error("10015", "Idempotency-Key reused",
                                           "This Idempotency-Key was used with a different request."))
            return status, json.loads(json.dumps(answer))
        status, answer = self._schedule(path, body)
        if 200 <= status < 300:  # only successful answers are replayed
            self._idempotency[record_id] = (query, body, self.now(), status, json.loads(json.dumps(answer)))
        return status, answer

    def _schedule(self, path: str, raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, _errors(_error("10015", "Bad Request", "The request body is not valid JSON."))
        if not isinstance(body, dict):
            return 400, _errors(_error("10015", "Bad Request", "The request body must be an object."))
        to = body.get("to")
        if not isinstance(to, str) or not _E164.match(to):
            return 400, _errors(
                _error("40310", "Invalid 'to' address", "The 'to' address should be in +E.164 format.", "/to")
            )
        sender = body.get("from")
        profile = body.get("messaging_profile_id")
        if not sender and not profile:
            return 400, _errors(
                _error(
                    "40305",
                    "Invalid 'from' address",
                    "Either 'from' or 'messaging_profile_id' is required.",
                    "/from",
                )
            )
        if sender and not (_E164.match(sender) or _ALPHA_SENDER.match(sender)):
            return 400, _errors(
                _error(
                    "40305",
                    "Invalid 'from' address",
                    "The 'from' address should be +E.164, a short code or an alphanumeric sender ID.",
                    "/from",
                )
            )
        text = body.get("text")
        if not isinstance(text, str) or not text:
            return 400, _errors(_error("10015", "Bad Request", "'text' is required for SMS.", "/text"))
        send_at_raw = body.get("send_at")
        now = self.now()
        if send_at_raw is None and path.endswith("/schedule"):
            return 400, _errors(_error("10015", "Bad Request", "'send_at' is required.", "/send_at"))
        send_at: datetime | None = None
        if send_at_raw is not None:
            try:
                send_at = datetime.fromisoformat(str(send_at_raw).replace("Z", "+00:00"))
            except ValueError:
                return 400, _errors(
                    _error("10015", "Invalid send_at", "'send_at' is not a date-time.", "/send_at")
                )
            if send_at.tzinfo is None:
                send_at = send_at.replace(tzinfo=UTC)
            if not (now + timedelta(minutes=5) <= send_at <= now + timedelta(days=5)):
                return 400, _errors(
                    _error(
                        "10015",
                        "Invalid send_at",
                        "send_at must be at least 5 minutes and at most 5 days in the future.",
                        "/send_at",
                    )
                )
        message = self._new_message(
            to=to,
            text=text,
            sender=sender,
            profile=profile,
            send_at=send_at,
            status="scheduled" if send_at is not None else "queued",
        )
        self.messages[message["id"]] = message
        self._send_at[message["id"]] = send_at
        if send_at is None:
            self._sent_now.add(message["id"])
        return 200, {"data": json.loads(json.dumps(message))}

    def _cancel(self, message: dict[str, Any] | None) -> tuple[int, Any]:
        if message is None:  # the spec types the DELETE 404 body as a bare error object
            return 404, _error(
                "10005", "Resource not found", "The requested resource or URL could not be found."
            )
        self._advance(message)
        send_at = self._send_at.get(message["id"])
        cancellable = (
            message["to"][0]["status"] == "scheduled"
            and send_at is not None
            and send_at - self.now() > timedelta(minutes=1)
        )
        if not cancellable:
            return 403, _error(
                "10015",
                "Message cannot be cancelled",
                "Only messages with status=scheduled and send_at more than a minute from now "
                "can be cancelled.",
            )
        for recipient in message["to"]:
            recipient["status"] = "cancelled"
        message["completed_at"] = iso(self.now())
        return 200, json.loads(json.dumps(message))  # top level: no `data` wrapper

    def _advance(self, message: dict[str, Any]) -> None:
        """Time moves on: scheduled → delivered once send_at has passed; sent now → delivered when read."""
        status = message["to"][0]["status"]
        send_at = self._send_at.get(message["id"])
        due = (status == "queued" and message["id"] in self._sent_now) or (
            status == "scheduled" and send_at is not None and send_at <= self.now()
        )
        if not due:
            return
        sent = send_at or self.now()
        for recipient in message["to"]:
            recipient["status"] = self.deliver_as
        message["sent_at"] = iso(sent)
        message["completed_at"] = iso(sent + timedelta(seconds=3))

    def _new_message(
        self,
        *,
        to: str,
        text: str,
        sender: str | None,
        profile: str | None,
        send_at: datetime | None,
        status: str,
    ) -> dict[str, Any]:
        encoding, parts = _encoding_and_parts(text)
        return {
            "record_type": "message",
            "direction": "outbound",
            "id": str(uuid.uuid4()),
            "type": "SMS",
            "messaging_profile_id": profile or self.default_profile_id,
            "organization_id": self.organization_id,
            "from": {"phone_number": sender or "+18445550099", "carrier": "Telnyx", "line_type": "VoIP"},
            "to": [
                {
                    "phone_number": to,
                    "status": status,
                    "carrier": "T-MOBILE USA, INC.",
                    "line_type": "Wireless",
                }
            ],
            "cc": [],
            "text": text,
            "subject": None,
            "media": [],
            "webhook_url": None,
            "webhook_failover_url": None,
            "encoding": encoding,
            "parts": parts,
            "tags": [],
            "cost": None,
            "cost_breakdown": None,
            "tcr_campaign_id": None,
            "tcr_campaign_billable": False,
            "tcr_campaign_registered": None,
            "received_at": iso(self.now()),
            "sent_at": None,
            "completed_at": None,
            "valid_until": None,
            "errors": [],
        }


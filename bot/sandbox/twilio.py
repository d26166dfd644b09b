"""A fake Twilio Programmable Messaging API (2010-04-01) over real HTTP.

What it does like Twilio (twilio.com/docs/messaging/api/message-resource, …/features/message-scheduling,
/docs/api/errors, and what the official `twilio` package sends and parses; tests/contract drives it with
that package):
- HTTP Basic auth with the Account SID and Auth Token, or an API key SID and secret; anything else is 401
  `{"code": 20003, "message": "Authenticate", …}`. The path's account must be the credentials' account.
- Bodies are form-encoded (`application/x-www-form-urlencoded`); answers are JSON resources with RFC 2822
  dates and `{code, message, more_info, status}` errors (the code an integer).
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: `ScheduleType=fixed` needs `MessagingServiceSid`
  (35118) and `SendAt` (35111), which must be 15 minutes to 35 days ahead (35114); answer 201 with
  `status: scheduled`. Without `ScheduleType` the message is sent now (`accepted`, then `delivered`).
- `GET …/Messages/{Sid}.json`; a scheduled message whose `SendAt` has passed is `delivered` (or
  `deliver_as`) when next read. Unknown SIDs: 404 code 20404.
- `POST …/Messages/{Sid}.json` with `Status=canceled`: only while `scheduled`, else 400 code 30409
  "This message cannot be canceled".
- `rate_limit=(n, seconds)`: a fixed window; past it 429 code 20429 with `Retry-After` (Twilio sends no
  x-ratelimit headers on the REST API).
- `status_callback(sid, status)`: the form Twilio posts to a message's `StatusCallback`, signed
  (`X-Twilio-Signature`: base64 HMAC-SHA1, keyed with the Auth Token, of the URL followed by each
  parameter's name and value, sorted by name).
Invented where no source says (kept plausible): the message text of 35118 and 21701, and that a
mismatched account in the path is 20003.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

from bot.sandbox.server import FakeServer, LocalService, Receive, Scope, Send
from bot.sandbox.telnyx import FixedWindow, read_body, reply, request_headers, utcnow

API = "/2010-04-01"
_ACCOUNT_PATH = re.compile(r"^/2010-04-01/Accounts/([^/]+)/Messages(?:/([^/]+))?\.json$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SID = re.compile(r"^[SM]M[0-9a-f]{32}$")
MIN_AHEAD = timedelta(minutes=15)
MAX_AHEAD = timedelta(days=35)
FINAL = {"delivered", "undelivered", "failed", "canceled", "read"}


def _hex_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=False)


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature of a form POST (the scheme of twilio.request_validator.RequestValidator)."""
    payload = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


class FakeTwilio(LocalService):
    """Twilio's Messages API on http://127.0.0.1:<port>. Tests read `.messages` and `.server.requests`."""

    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.account_sid = _hex_sid("AC")
        self.auth_token = secrets.token_hex(16)
        self.api_key = _hex_sid("SK")
        self.api_secret = secrets.token_urlsafe(24)
        self.messaging_service_sid = _hex_sid("MG")
        self.sender = "+15017122661"  # the Messaging Service's sender pool
        self.now: Callable[[], datetime] = now or utcnow
        self.messages: dict[str, dict[str, Any]] = {}
        self.deliver_as = "delivered"  # what a scheduled message becomes once its SendAt has passed
        self._send_at: dict[str, datetime] = {}
        self._limiter = FixedWindow(*rate_limit) if rate_limit else None
        self._lock = threading.Lock()
        self.server = FakeServer(self._app)

    # -- lifecycle and addresses

    @property
    def base_url(self) -> str:
        return self.server.url

    # -- state helpers for tests

    def add_message(self, status: str = "scheduled", send_at: datetime | None = None, to: str = "+15558675310",
                    body: str = "Hello from smsops") -> str:
        """Put a scheduled message straight into the fake's state (no HTTP); returns its SID."""
        when = send_at or (self.now() + timedelta(hours=1))
        with self._lock:
            message = self._new_message(to=to, body=body, service=self.messaging_service_sid, status=status)
            self.messages[message["sid"]] = message
            self._send_at[message["sid"]] = when
        return str(message["sid"])

    def status_of(self, sid: str) -> str:
        with self._lock:
            message = self.messages[sid]
            self._advance(message)
            return str(message["status"])

    def send_at_of(self, sid: str) -> datetime:
        return self._send_at[sid]

    def status_callback(self, sid: str, status: str, url: str, error_code: int | None = None,
                        token: str | None = None) -> tuple[dict[str, str], dict[str, str]]:
        """(form, headers) of the status callback Twilio posts to `url` for this message, signed."""
        message = self.messages[sid]
        form = {
            "AccountSid": self.account_sid, "ApiVersion": "2010-04-01", "From": message["from"] or self.sender,
            "MessageSid": sid, "MessageStatus": status, "MessagingServiceSid": message["messaging_service_sid"],
            "SmsSid": sid, "SmsStatus": status, "To": message["to"],
        }
        if error_code is not None:
            form["ErrorCode"] = str(error_code)
        signature = sign(token or self.auth_token, url, form)
        return form, {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded",
                      "I-Twilio-Idempotency-Token": secrets.token_hex(16)}

    # -- the HTTP app

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        if self._limiter is not None:
            allowed, _remaining, reset = self._limiter.hit()
            if not allowed:
                await reply(send, 429, error_body(20429, "Too Many Requests", 429),
                            {"retry-after": str(max(1, math.ceil(reset)))})
                return
        status, payload = self._handle(scope["method"].upper(), scope["path"], request_headers(scope), body)
        await reply(send, status, payload)

    def _handle(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, Any]:
        account = self._authenticated(headers.get("authorization", ""))
        if account is None:
            return 401, error_body(20003, "Authenticate", 401)
        match = _ACCOUNT_PATH.match(path)
        if match is None or method not in ("GET", "POST"):
            return 404, error_body(20404, f"The requested resource {path} was not found", 404)
        if match.group(1) != account:
            return 401, error_body(20003, "Authenticate", 401)
        form: dict[str, str] = {}
        if method == "POST":
            ctype = headers.get("content-type", "").split(";")[0].strip()
            if ctype != "application/x-www-form-urlencoded":
                return 400, error_body(20001, f"Content-Type {ctype or 'none'} is not supported: send a form", 400)
            form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        sid = match.group(2)
        with self._lock:
            if sid is None:
                if method != "POST":
                    return 404, error_body(20404, f"The requested resource {path} was not found", 404)
                return self._create(form)
            message = self.messages.get(sid)
            if message is None:
                return 404, error_body(20404, f"The requested resource {path} was not found", 404)
            self._advance(message)
            if method == "GET":
                return 200, json.loads(json.dumps(message))
            return self._update(message, form)

    def _authenticated(self, header: str) -> str | None:
        """The account the Basic credentials belong to, or None."""
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if (user, password) in ((self.account_sid, self.auth_token), (self.api_key, self.api_secret)):
            return self.account_sid
        return None

    def _create(self, form: Mapping[str, str]) -> tuple[int, Any]:
        to = form.get("To", "")
        if not _E164.match(to):
            return 400, error_body(21211, f"Invalid 'To' Phone Number: {to}", 400)
        body = form.get("Body", "")
        if not body:
            return 400, error_body(21602, "Message body is required.", 400)
        service = form.get("MessagingServiceSid")
        if service is not None and service != self.messaging_service_sid:
            return 400, error_body(21701, f"The Messaging Service Sid {service} is invalid.", 400)
        schedule_type = form.get("ScheduleType")
        if schedule_type is None:
            if service is None and not form.get("From"):
                return 400, error_body(21603, "A 'From' phone number is required.", 400)
            message = self._new_message(to=to, body=body, service=service, status="accepted")
            self.messages[message["sid"]] = message
            self._send_at[message["sid"]] = self.now()
            return 201, json.loads(json.dumps(message))
        if schedule_type != "fixed":
            return 400, error_body(35112, f"Unsupported ScheduleType: {schedule_type}", 400)
        if service is None:
            return 400, error_body(35118, "MessagingServiceSid is required to schedule a message.", 400)
        raw_send_at = form.get("SendAt")
        if not raw_send_at:
            return 400, error_body(35111, "You must indicate SendAt timestamp if ScheduleType is 'fixed'.", 400)
        try:
            send_at = datetime.strptime(raw_send_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return 400, error_body(35114, "SendAt time must be in [YYYY]-[MM]-[DD]T[HH]:[MM]:[SS]Z format.", 400)
        if not MIN_AHEAD <= send_at - self.now() <= MAX_AHEAD:
            return 400, error_body(
                35114, "SendAt time must be between 900 seconds and 35 days (3024000 seconds) in the future, "
                       "inclusive.", 400)
        message = self._new_message(to=to, body=body, service=service, status="scheduled")
        self.messages[message["sid"]] = message
        self._send_at[message["sid"]] = send_at
        return 201, json.loads(json.dumps(message))

    def _update(self, message: dict[str, Any], form: Mapping[str, str]) -> tuple[int, Any]:
        status = form.get("Status")
        if status is None:
            return 400, error_body(20001, "Missing required parameter Status or Body in the post body", 400)
        if status != "canceled":
            return 400, error_body(20001, f"Status {status} is not valid: only canceled may be set", 400)
        if message["status"] != "scheduled":
            return 400, error_body(30409, "This message cannot be canceled", 400)
        message["status"] = "canceled"
        message["date_updated"] = rfc2822(self.now())
        return 200, json.loads(json.dumps(message))

    def _advance(self, message: dict[str, Any]) -> None:
        """Time moves on: scheduled or accepted → delivered once the send time has passed."""
        if message["status"] not in ("scheduled", "accepted"):
            return
        send_at = self._send_at[message["sid"]]
        if send_at > self.now():
            return
        message["status"] = self.deliver_as
        message["from"] = self.sender
        message["num_segments"] = str(max(1, math.ceil(len(message["body"]) / 153)))
        message["date_sent"] = rfc2822(send_at)
        message["date_updated"] = rfc2822(send_at + timedelta(seconds=3))
        if self.deliver_as in ("failed", "undelivered"):
            message["error_code"] = 30003
            message["error_message"] = "Unreachable destination handset"

    def _new_message(self, *, to: str, body: str, service: str | None, status: str) -> dict[str, Any]:
        sid = _hex_sid("SM")
        now = rfc2822(self.now())
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": None if service else self.sender,
            "messaging_service_sid": service, "num_media": "0", "num_segments": "0", "price": None,
            "price_unit": None, "sid": sid, "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": to, "uri": f"{uri}.json",
        }

"""POST /webhooks/telnyx and POST /webhooks/twilio: signed delivery reports, recorded in the ledger and
shown on the notice."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.domain.results import CardKind
from bot.infra.metrics import WEBHOOKS
from bot.operations import optout
from bot.operations.common import card_for, when
from bot.operations.services import Services
from bot.providers.base import ProviderName
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, Outcome

log = logging.getLogger(__name__)
MAX_SKEW = 300  # seconds, as Telnyx's own SDK allows

FAILED_STATUSES = {"sending_failed", "delivery_failed", "expired"}
# What `message.finalized` reports: once one of these is known, a late `message.sent` changes nothing.
FINAL_STATUSES = FAILED_STATUSES | {"delivered", "delivery_unconfirmed"}

# Twilio's MessageStatus values worth a ledger entry (queued, sending, accepted, scheduled and canceled are
# the bot's own doing or on the way), and the ones after which a late `sent` changes nothing.
TWILIO_RECORDED = {"sent", "delivered", "undelivered", "failed", "read"}
TWILIO_FAILED = {"undelivered", "failed"}
TWILIO_FINAL = TWILIO_FAILED | {"delivered", "read"}


def verify_signature(public_key_b64: str, signature_b64: str, timestamp: str, body: bytes,
                     now: float | None = None) -> str | None:
    """None when the request is genuine; otherwise the reason it is not."""
    try:
        stamp = int(timestamp)
    except ValueError:
        return "the telnyx-timestamp header is missing or not a number"
    if abs((now if now is not None else time.time()) - stamp) > MAX_SKEW:
        return "the timestamp is more than 5 minutes away from now"
    try:
        key = VerifyKey(base64.b64decode(public_key_b64))
        signature = base64.b64decode(signature_b64, validate=True)
        key.verify(f"{timestamp}|".encode() + body, signature)
    except (BadSignatureError, ValueError, TypeError):
        return "the telnyx-signature-ed25519 signature does not match"
    return None


def telnyx_webhook_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        key = services.settings.telnyx_public_key
        if not key:
            return JSONResponse({"error": "TELNYX_PUBLIC_KEY is not set; webhooks are not accepted"},
                                status_code=503)
        problem = verify_signature(key, request.headers.get("telnyx-signature-ed25519", ""),
                                   request.headers.get("telnyx-timestamp", ""), body,
                                   services.clock.now().timestamp())
        if problem is not None:
            return await _refused(services, ProviderName.TELNYX, problem)
        try:
            event = json.loads(body)
            data = event["data"]
            event_type = str(data["event_type"])
            payload: dict[str, Any] = data["payload"]
            message_id = str(payload["id"])
            status = str(((payload.get("to") or [{}])[0]).get("status", ""))
        except (ValueError, KeyError, TypeError, IndexError):
            WEBHOOKS.labels(provider="telnyx", outcome="unreadable").inc()
            return JSONResponse({"error": "not a Telnyx message event"}, status_code=400)
        seen_key = f"telnyx:{data.get('id') or message_id + event_type}"
        if event_type == "message.received":  # an inbound SMS: STOP-type keywords edit the opt-out list
            sender = str((payload.get("from") or {}).get("phone_number") or "")
            return await _inbound(services, "telnyx", seen_key, sender, str(payload.get("text") or ""))
        if event_type not in ("message.sent", "message.finalized"):
            return JSONResponse({"ignored": event_type})
        if not await services.db(services.store.first_time, seen_key):
            return JSONResponse({"duplicate": True})
        try:
            await record_delivery(services, message_id, event_type, status)
        except Exception:
            return await _not_recorded(services, "telnyx", seen_key, "could not record a Telnyx delivery report",
                                       {"message_id": message_id})
        WEBHOOKS.labels(provider="telnyx", outcome="recorded").inc()
        return JSONResponse({"recorded": True})

    return endpoint


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature: base64 HMAC-SHA1 of the URL followed by every parameter's name and value, sorted
    (the scheme of the official package's twilio.request_validator.RequestValidator)."""
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1).digest()).decode()


def verify_twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]], signature: str) -> str | None:
    """None when the callback is genuine; otherwise the reason it is not. Like RequestValidator, the URL
    is tried with and without its default port (Twilio's own signing is not consistent about it)."""
    if not signature:
        return "the X-Twilio-Signature header is missing"
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    variants = {url, urlunsplit(parts._replace(netloc=host)), urlunsplit(parts._replace(netloc=f"{host}:{port}"))}
    if any(hmac.compare_digest(twilio_signature(auth_token, variant, params), signature) for variant in variants):
        return None
    return "the X-Twilio-Signature signature does not match"


def twilio_webhook_endpoint(services: Services) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        body = await request.body()
        settings = services.settings
        if settings.twilio_auth_token is None or not settings.twilio_account_sid:
            return JSONResponse({"error": "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set; "
                                          "webhooks are not accepted"}, status_code=503)
        # The signature covers the URL Twilio called: behind a proxy that is the configured public one.
        url = settings.twilio_status_callback_url or str(request.url)
        try:
            params = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError):
            params = []
        problem = verify_twilio_signature(settings.twilio_auth_token.get_secret_value(), url, params,
                                          request.headers.get("x-twilio-signature", ""))
        fields = dict(params)
        if problem is None and fields.get("AccountSid") != settings.twilio_account_sid:
            problem = "the callback is for another Twilio account"
        if problem is not None:
            return await _refused(services, ProviderName.TWILIO, problem)
        if fields.get("OptOutType"):  # an inbound STOP/START (Twilio's Advanced Opt-Out classified it)
            kind = fields["OptOutType"].upper()
            opt_out = True if kind == "STOP" else False if kind == "START" else None
            if opt_out is None:
                return JSONResponse({"ignored": kind})
            return await _inbound(services, "twilio", f"twilio:{fields.get('MessageSid', '')}:inbound",
                                  fields.get("From", ""), fields.get("Body", ""), opt_out)
        message_sid, status = fields.get("MessageSid", ""), fields.get("MessageStatus", "")
        if not message_sid or not status:
            WEBHOOKS.labels(provider="twilio", outcome="unreadable").inc()
            return JSONResponse({"error": "not a Twilio message status callback"}, status_code=400)
        if status not in TWILIO_RECORDED:
            return JSONResponse({"ignored": status})
        # Twilio signs no timestamp: a replayed callback is told apart by what it reports, once per status.
        seen_key = f"twilio:{message_sid}:{status}"
        if not await services.db(services.store.first_time, seen_key):
            return JSONResponse({"duplicate": True})
        error_code = fields.get("ErrorCode")
        try:
            await record_delivery(services, message_sid, "status callback", status, provider=ProviderName.TWILIO,
                                  error_code=error_code)
        except Exception:
            return await _not_recorded(services, "twilio", seen_key, "could not record a Twilio status callback",
                                       {"message_id": message_sid})
        WEBHOOKS.labels(provider="twilio", outcome="recorded").inc()
        return JSONResponse({"recorded": True})

    return endpoint


async def _inbound(services: Services, provider: str, seen_key: str, sender: str, text: str,
                   opt_out: bool | None = None) -> Response:
    if not await services.db(services.store.first_time, seen_key):
        return JSONResponse({"duplicate": True})
    try:
        done = await optout.inbound(services, provider, sender, text, opt_out)
    except Exception:
        return await _not_recorded(services, provider, seen_key, "could not record an inbound opt-out keyword",
                                   {"provider": provider})
    if done == "ignored":
        return JSONResponse({"ignored": "message.received"})
    WEBHOOKS.labels(provider=provider, outcome="recorded").inc()
    return JSONResponse({"recorded": done})


async def _refused(services: Services, provider: ProviderName, problem: str) -> Response:
    """A webhook that is not genuine (bad signature, stale, another account): counted, kept in the ledger
    for whoever investigates, and answered 401."""
    WEBHOOKS.labels(provider=provider.value, outcome="refused").inc()
    await services.db(services.store.record, EntryDraft(
        actor=SYSTEM_ACTOR, action=Action.REFUSED, outcome=Outcome.REFUSED, provider=provider,
        detail=f"delivery webhook refused: {problem}"))
    return JSONResponse({"error": problem}, status_code=401)


async def _not_recorded(services: Services, provider: str, seen_key: str, what: str,
                        context: dict[str, str]) -> Response:
    """Called while handling the failure: logs it, then forgets the event, so that the provider's
    redelivery (Telnyx and Twilio retry on a 5xx) is recorded instead of being taken for a duplicate."""
    log.exception(what, extra=context)
    await services.db(services.store.forget_seen, seen_key)
    WEBHOOKS.labels(provider=provider, outcome="error").inc()
    return JSONResponse({"error": "not recorded; send it again"}, status_code=500)


async def record_delivery(services: Services, message_id: str, event_type: str, status: str, *,
                          provider: ProviderName = ProviderName.TELNYX, error_code: str | None = None) -> None:
    twilio = provider is ProviderName.TWILIO
    label = "Twilio" if twilio else "Telnyx"
    send = await services.db(services.store.find_send, message_id, provider)
    failed = status in (TWILIO_FAILED if twilio else FAILED_STATUSES)
    action = Action.FAILED if failed else Action.SENT
    word = "failed" if failed else ("delivered" if status in ("delivered", "read") else "sent")
    because = f" (error {error_code})" if error_code else ""
    draft = EntryDraft(
        actor=SYSTEM_ACTOR, action=action, outcome=Outcome.ERROR if failed else Outcome.OK,
        channel=send.channel if send else None, team=send.team if send else None, provider=provider,
        target=message_id, detail=f"{label} {event_type}: {status or 'no status'}{because}",
    )
    if send is None:
        await services.db(services.store.record, draft)
        return
    late = (status not in TWILIO_FINAL) if twilio else (event_type == "message.sent")
    if late and send.provider_status in (TWILIO_FINAL if twilio else FINAL_STATUSES):
        # Telnyx does not promise order: the final report came first. Keep the report, not the downgrade.
        await services.db(services.store.record, draft)
        return
    await services.db(services.store.set_state, send.id, "failed" if failed else "sent", status, None, [draft])
    # Recorded: from here on a failure must not make the endpoint ask Telnyx for the event again.
    try:
        await _show_delivery(services, send.id, failed, word, status, label)
    except Exception:
        log.exception("recorded a delivery report but could not show it",
                      extra={"message_id": message_id, "provider": provider.value})


async def _show_delivery(services: Services, send_id: str, failed: bool, word: str, status: str,
                         label: str = "Telnyx") -> None:
    await services.db(services.reminders.drop, send_id)  # a transaction: off the event loop
    send = await services.db(services.store.get_send, send_id)
    if send is not None and send.notice_channel and send.notice_ts:
        batch = await services.db(services.store.batch, send.batch_id)
        card = card_for(batch or [send], CardKind.CLOSED, f"<@{send.created_by}> scheduled an SMS", send.batch_id,
                        f"{'❌' if failed else '📨'} {word.capitalize()} — {label} reported `{status}` at "
                        f"{when(services.now())}")
        await services.notifier.update_card(send.notice_channel, send.notice_ts, card)

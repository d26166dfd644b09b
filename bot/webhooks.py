"""POST /webhooks/telnyx: signed delivery reports, recorded in the ledger and shown on the notice."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bot.metrics import WEBHOOKS
from bot.operations.common import card_for, when
from bot.operations.results import CardKind
from bot.providers.base import ProviderName
from bot.services import Services
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, Outcome

log = logging.getLogger(__name__)
MAX_SKEW = 300  # seconds, as Telnyx's own SDK allows

FAILED_STATUSES = {"sending_failed", "delivery_failed", "expired"}
# What `message.finalized` reports: once one of these is known, a late `message.sent` changes nothing.
FINAL_STATUSES = FAILED_STATUSES | {"delivered", "delivery_unconfirmed"}


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
            WEBHOOKS.labels(provider="telnyx", outcome="refused").inc()
            await services.db(services.store.record, EntryDraft(
                actor=SYSTEM_ACTOR, action=Action.REFUSED, outcome=Outcome.REFUSED, provider=ProviderName.TELNYX,
                detail=f"delivery webhook refused: {problem}"))
            return JSONResponse({"error": problem}, status_code=401)
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
        if event_type not in ("message.sent", "message.finalized"):
            return JSONResponse({"ignored": event_type})
        seen_key = f"telnyx:{data.get('id') or message_id + event_type}"
        if not await services.db(services.store.first_time, seen_key):
            return JSONResponse({"duplicate": True})
        try:
            await record_delivery(services, message_id, event_type, status)
        except Exception:
            # Not recorded: forget the event so that Telnyx's redelivery (it retries on a 5xx) is recorded.
            log.exception("could not record a Telnyx delivery report", extra={"message_id": message_id})
            await services.db(services.store.forget_seen, seen_key)
            WEBHOOKS.labels(provider="telnyx", outcome="error").inc()
            return JSONResponse({"error": "not recorded; send it again"}, status_code=500)
        WEBHOOKS.labels(provider="telnyx", outcome="recorded").inc()
        return JSONResponse({"recorded": True})

    return endpoint


async def record_delivery(services: Services, message_id: str, event_type: str, status: str) -> None:
    send = await services.db(services.store.find_send, message_id, ProviderName.TELNYX)
    failed = status in FAILED_STATUSES
    action = Action.FAILED if failed else Action.SENT
    word = "failed" if failed else ("delivered" if status == "delivered" else "sent")
    draft = EntryDraft(
        actor=SYSTEM_ACTOR, action=action, outcome=Outcome.ERROR if failed else Outcome.OK,
        channel=send.channel if send else None, team=send.team if send else None, provider=ProviderName.TELNYX,
        target=message_id, detail=f"Telnyx {event_type}: {status or 'no status'}",
    )
    if send is None:
        await services.db(services.store.record, draft)
        return
    if event_type == "message.sent" and send.provider_status in FINAL_STATUSES:
        # Telnyx does not promise order: the final report came first. Keep the report, not the downgrade.
        await services.db(services.store.record, draft)
        return
    await services.db(services.store.set_state, send.id, "failed" if failed else "sent", status, None, [draft])
    # Recorded: from here on a failure must not make the endpoint ask Telnyx for the event again.
    try:
        await _show_delivery(services, send.id, failed, word, status)
    except Exception:
        log.exception("recorded a Telnyx delivery report but could not show it", extra={"message_id": message_id})


async def _show_delivery(services: Services, send_id: str, failed: bool, word: str, status: str) -> None:
    await services.db(services.reminders.drop, send_id)  # a transaction: off the event loop
    send = await services.db(services.store.get_send, send_id)
    if send is not None and send.notice_channel and send.notice_ts:
        batch = await services.db(services.store.batch, send.batch_id)
        card = card_for(batch or [send], CardKind.CLOSED, f"<@{send.created_by}> scheduled an SMS", send.batch_id,
                        f"{'❌' if failed else '📨'} {word.capitalize()} — Telnyx reported `{status}` at "
                        f"{when(services.now())}")
        await services.notifier.update_card(send.notice_channel, send.notice_ts, card)

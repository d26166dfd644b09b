"""Socket Mode through the inbox: the socket's envelope is acked after the same one durable write as an
HTTP request's (bot/server/http.py), and the work is left to the inbox's workers, which dispatch a
payload stored with content type `socket_mode` (bot/server/inbox.py)."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.operations.services import Services
from bot.server.http import QUEUED_NOTE_FROM
from bot.server.inbox import SOCKET_CONTENT_TYPE, Inbox
from bot.slack.front import front, with_queue
from bot.slack.listeners.context import new_request_id
from db.models import InboxItem

log = logging.getLogger("bot.server.socket_mode")


class QueueingSocketModeHandler(AsyncSocketModeHandler):
    """Acks a Socket Mode envelope as the HTTP ack path acks a request: `/sms help` and usage errors are
    answered in the ack, a modal's submission or a menu's options are handed to Bolt in line (their ack
    carries the answer), everything else is queued once and acked."""

    def __init__(self, app: AsyncApp, app_token: str, services: Services, inbox: Inbox) -> None:
        super().__init__(app, app_token)
        self.services = services
        self.inbox = inbox

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]
        payload: dict[str, Any] = req.payload if isinstance(req.payload, dict) else {}
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        settings = self.services.settings
        said = front(body.encode(), "application/json", self.services.now(), settings.default_tz,
                     settings.default_region)
        if said.in_line:
            await super().handle(client, req)
            return
        if not said.queue:
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id,
                                                                      payload=said.answer))
            return
        rid = new_request_id()
        # the same payload delivered again (Slack's retry on another envelope) is queued once
        item = InboxItem(key=f"slack:{hashlib.sha256(body.encode()).hexdigest()}", request_id=rid,
                         kind=said.kind, content_type=SOCKET_CONTENT_TYPE, body=body,
                         received_at=self.services.now())

        def ack_text(ahead: int) -> str:
            return str((with_queue(said.answer, ahead if ahead >= QUEUED_NOTE_FROM else 0) or {}).get("text", ""))

        try:
            ahead = await self.services.db_for_ack(self.services.store.enqueue_request, item, ack_text)
        except Exception:  # not durable: no ack, so Slack delivers the envelope again
            log.exception("could not queue a Socket Mode request", extra={"request_id": rid})
            return
        if ahead is None:
            log.info("ignored a replayed Socket Mode request", extra={"retry": req.retry_attempt})
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            return
        self.inbox.wake()
        answer = with_queue(said.answer, ahead if ahead >= QUEUED_NOTE_FROM else 0)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id, payload=answer))

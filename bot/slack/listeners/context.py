"""What every listener needs from a Slack payload, and the apology when something breaks."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient, WebhookResponse

from bot.domain.results import Reply, Tone
from bot.infra.logs import request_id
from bot.operations.common import Invoker
from bot.operations.reconcile import REQUEST
from bot.operations.services import Services
from bot.slack.blocks import reply_blocks, reply_text
from db.models import Intent
from db.store import new_id

log = logging.getLogger("bot.slack")

# Set while an inbox worker runs the request (bot/server/inbox.py): its inbox row, queued before the ack and
# settled after the answer, is then the request's durable record (a dead worker's request is taken over, and
# its channel told if it cannot be run again), so `open_request` writes no second one.
HELD_BY_INBOX: ContextVar[bool] = ContextVar("smsops_held_by_inbox", default=False)


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


class SharedSessionRespond(AsyncRespond):
    """Bolt's `respond`, posting through the bot's shared aiohttp session (Services.webhooks) instead of
    a new session per answer; what it sends is built by Bolt's own `_build_message`, as before."""

    def __init__(self, base: AsyncRespond, services: Services) -> None:
        super().__init__(response_url=base.response_url, proxy=base.proxy, ssl=base.ssl)
        self._services = services

    async def __call__(self, text: str | dict[str, Any] = "", **kwargs: Any) -> WebhookResponse:  # type: ignore[override]
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        client = AsyncWebhookClient(url=self.response_url, proxy=self.proxy, ssl=self.ssl,
                                    session=self._services.webhooks.get())
        message = _build_message(**text) if isinstance(text, dict) else _build_message(text=text, **kwargs)
        return await client.send_dict(message)


def invoker_from_command(command: dict[str, Any], rid: str) -> Invoker:
    return Invoker(user=command.get("user_id", ""), team=command.get("team_id"),
                   channel=command.get("channel_id"), request_id=rid, name=command.get("user_name"))


def invoker_from_action(body: dict[str, Any], rid: str) -> Invoker:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
    team = (body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id")
    user = body.get("user") or {}
    return Invoker(user=user.get("id", ""), team=team, channel=channel, request_id=rid,
                   name=user.get("username") or user.get("name"))


async def answer(respond: AsyncRespond, reply: Reply, *, replace: bool = False) -> None:
    await respond(text=reply_text(reply), blocks=reply_blocks(reply), response_type="ephemeral",
                  replace_original=replace, delete_original=False)


def apology(rid: str) -> Reply:
    """What the user reads when the bot broke: short, with the id to find the log line by."""
    return Reply(Tone.ERROR, f"Sorry, something went wrong on our side (ref `{rid}`). Nothing more will happen "
                             "for this request; the ledger shows what was done.")


async def guarded(respond: AsyncRespond, rid: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run post-ack work; on any unexpected error log it and apologise with the request id."""
    token = request_id.set(rid)
    try:
        await work()
    except Exception:
        log.exception("listener failed", extra={"request_id": rid})
        try:
            await answer(respond, apology(rid))
        except Exception:
            log.exception("could not send the apology")
    finally:
        request_id.reset(token)


def quoted(text: str, limit: int = 200) -> str:
    """A user's own words, safe to echo in a channel message: inline code, no mentions or links."""
    text = " ".join(text.split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
    return f"`{text}`"


async def open_request(services: Services, who: Invoker, what: str) -> str | None:
    """Record a request before it is acked; closed by `finish_request` once it was answered. One left
    open by a crash is reported in its channel after the restart (bot/operations/reconcile.py), so an
    acked request is never dropped silently. Returns the record's id (None if it could not be written:
    the request still goes ahead). None, writing nothing, for a request the inbox holds (HELD_BY_INBOX)."""
    if HELD_BY_INBOX.get():
        return None
    intent = Intent(id=new_id(), operation=REQUEST, provider="slack", actor=who.user[:64],
                    team=(who.team or None) and who.team[:32], channel=(who.channel or None) and who.channel[:64],
                    payload=json.dumps({"request_id": who.request_id, "what": what}),
                    started_at=services.now())
    try:
        # urgent: the ack waits for it; it goes before background writers (db/engine.py, WriteGate)
        await services.db(services.store.open_intent, intent, urgent=True)
    except Exception:
        log.exception("could not record the request")
        return None
    return intent.id


async def finish_request(services: Services, intent_id: str | None, who: Invoker | None = None) -> None:
    if intent_id is not None:
        try:
            await services.db(services.store.close_intent, intent_id)
        except Exception:
            log.exception("could not close the request record")
    if who is not None and who.name:  # after the answer: the name is for the CLI, never worth a delay
        try:
            await services.db(services.store.remember_name, who.user, who.name)
        except Exception:
            log.exception("could not keep the user's name")


class InboxAck(AsyncAck):
    """A listener's `ack` when its request comes from the inbox: Slack was acked already (by the ack
    path, bot/server/http.py), so what the listener would have put in its ack goes to the user through
    `respond` instead, unless the ack path already said exactly that."""

    def __init__(self, said: str, respond: Callable[..., Awaitable[Any]] | None) -> None:
        super().__init__()
        self._said = said
        self._respond = respond

    async def __call__(self, text: str | dict[str, Any] = "", blocks: Any = None,  # type: ignore[override]
                       **kwargs: Any) -> BoltResponse:
        response = await super().__call__(text, blocks, **kwargs)
        shown = text.get("text", "") if isinstance(text, dict) else text
        if (shown or blocks) and shown != self._said and self._respond is not None:
            try:
                await self._respond(text=shown, blocks=blocks, response_type="ephemeral",
                                    replace_original=False, delete_original=False)
            except Exception:  # the work still goes ahead; its answer follows
                log.exception("could not pass on the listener's ack")
        return response


class EphemeralRespond:
    """`respond` for a request that waited in the inbox longer than its response_url lives (30 minutes):
    the answer goes to the invoker by chat.postEphemeral in the request's channel instead (a message
    can no longer be replaced there: each answer is a new ephemeral message)."""

    def __init__(self, client: AsyncWebClient, channel: str, user: str) -> None:
        self.client = client
        self.channel = channel
        self.user = user
        self.response_url = None

    async def __call__(self, text: str | dict[str, Any] = "", blocks: Any = None, **_: Any) -> Any:
        if isinstance(text, dict):
            blocks = text.get("blocks", blocks)
            text = str(text.get("text", ""))
        return await self.client.chat_postEphemeral(channel=self.channel, user=self.user, text=text or " ",
                                                    blocks=blocks)

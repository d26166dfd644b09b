"""Button clicks: ack at once, re-read the record the button is bound to, act once, update the message."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.results import Reply, Tone
from bot.infra.metrics import ACK_SECONDS, CLICKS
from bot.operations import approval, held_approval, listing
from bot.operations.batch import cancel_batch
from bot.operations.bulk import cancel_mine, mine_from_button
from bot.operations.services import Services
from bot.slack.ids import ActionId
from bot.slack.listeners.commands import BulkProgress
from bot.slack.listeners.context import (
    answer,
    finish_request,
    guarded,
    invoker_from_action,
    new_request_id,
    open_request,
    quoted,
)
from bot.slack.listeners.home import HomeRespond


def responder(services: Services, body: dict[str, Any], respond: AsyncRespond | None,
              client: AsyncWebClient) -> Any:
    """Where the answer to a click goes: the message's response_url, or the Home tab it was pressed in."""
    if respond is not None and body.get("response_url"):
        return respond
    if (body.get("view") or {}).get("type") == "home":
        return HomeRespond(services, client, (body.get("user") or {}).get("id", ""))
    return respond


def register(app: AsyncApp, services: Services) -> None:
    async def on_cancel(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond,
                        context: dict[str, Any], client: AsyncWebClient) -> None:
        respond = responder(services, body, respond, client)
        started = time.perf_counter()
        rid = context.get("request_id") or new_request_id()
        who = invoker_from_action(body, rid)
        request = await open_request(services, who, f"Cancel click on batch {quoted(str(action.get('value', '')))}")
        await ack()
        ACK_SECONDS.labels(kind="action").observe(time.perf_counter() - started)

        async def work() -> None:
            reply = await cancel_batch(services, who, str(action.get("value", "")))
            CLICKS.labels(action="cancel", outcome=reply.tone.value).inc()
            await answer(respond, reply)

        await guarded(respond, rid, work)
        await finish_request(services, request, who)

    async def on_decide(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond,
                        context: dict[str, Any], client: AsyncWebClient) -> None:
        respond = responder(services, body, respond, client)
        started = time.perf_counter()
        rid = context.get("request_id") or new_request_id()
        who = invoker_from_action(body, rid)
        approve = action.get("action_id") == ActionId.APPROVE
        request = await open_request(services, who, f"{'Approve' if approve else 'Cancel'} click on approval "
                                                    f"request {quoted(str(action.get('value', '')))}")
        await ack()
        ACK_SECONDS.labels(kind="action").observe(time.perf_counter() - started)

        async def work() -> None:
            value = str(action.get("value", ""))
            if value.startswith(held_approval.HOLD_VALUE):  # a send held by the bot under the approval rules
                reply = await held_approval.decide(services, who, value, approve)
            else:
                reply = await approval.decide(services, who, value, approve)
            CLICKS.labels(action="approve" if approve else "reject", outcome=reply.tone.value).inc()
            await answer(respond, reply)

        await guarded(respond, rid, work)
        await finish_request(services, request, who)

    async def on_cancel_mine(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                             respond: AsyncRespond, context: dict[str, Any], client: AsyncWebClient) -> None:
        """The confirmed "Cancel these" of `/sms cancel all mine`: what the command did before it asked."""
        respond = responder(services, body, respond, client)
        started = time.perf_counter()
        rid = context.get("request_id") or new_request_id()
        who = invoker_from_action(body, rid)
        request = await open_request(services, who, "Confirmed /sms cancel all mine")
        await ack()
        ACK_SECONDS.labels(kind="action").observe(time.perf_counter() - started)

        async def work() -> None:
            try:
                cmd, listed_at = mine_from_button(str(action.get("value", "")))
            except (ValueError, KeyError, TypeError):
                await answer(respond, Reply(Tone.ERROR, "This button's list could not be read; nothing was "
                                                        "cancelled. Type `/sms cancel all mine` again."))
                return
            progress = BulkProgress(client, who, respond)
            reply = await cancel_mine(services, who, cmd, progress, listed_at)
            await progress.finish(reply)
            CLICKS.labels(action="cancel_mine", outcome=reply.tone.value).inc()
            await answer(respond, reply, replace=True)  # the list and its button give way to the outcome

        await guarded(respond, rid, work)
        await finish_request(services, request, who)

    async def on_more(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond,
                      context: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        respond = responder(services, body, respond, client)
        rid = context.get("request_id") or new_request_id()
        who = invoker_from_action(body, rid)

        async def work() -> None:
            try:
                cmd, before = listing.audit_from_token(str(action.get("value", "")))
            except (ValueError, KeyError, TypeError):
                return
            reply = await listing.audit(services, who, cmd, before_seq=before)
            ephemeral = bool((body.get("container") or {}).get("is_ephemeral", True))
            await answer(respond, reply, replace=ephemeral)

        await guarded(respond, rid, work)

    app.action(ActionId.CANCEL_BATCH.value)(on_cancel)
    app.action(ActionId.APPROVE.value)(on_decide)
    app.action(ActionId.REJECT.value)(on_decide)
    app.action(ActionId.AUDIT_MORE.value)(on_more)
    app.action(ActionId.CANCEL_MINE.value)(on_cancel_mine)

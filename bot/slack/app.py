"""The Bolt app: listeners registered, errors answered with a request id."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.infra.logs import request_id
from bot.operations.services import Services
from bot.slack import listeners
from bot.slack.listeners.context import EphemeralRespond, InboxAck, SharedSessionRespond, new_request_id

log = logging.getLogger("bot.slack")


# A request taken from the inbox (bot/server/inbox.py) carries these in its Bolt context.
INBOX_SAID = "inbox_said"  # what the ack path answered Slack
INBOX_EPHEMERAL = "inbox_ephemeral"  # its response_url has expired: answer by chat.postEphemeral


def build_app(services: Services, client: AsyncWebClient, signing_secret: str | None,
              *, queued: bool = False) -> AsyncApp:
    """`queued`: the app the inbox's workers dispatch to. Slack was acked before (bot/server/http.py), so
    a dispatch returns only once its listener has finished (the worker then settles the request)."""
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=queued,
        ignoring_self_events_enabled=True,
    )

    @app.middleware
    async def with_request_id(context: dict[str, Any], next: Callable[[], Awaitable[BoltResponse]]) -> Any:
        rid = context.get("request_id") or new_request_id()
        context["request_id"] = rid
        if context.get("response_url"):
            context["respond"] = SharedSessionRespond(context.respond, services)  # type: ignore[attr-defined]
        if context.get(INBOX_EPHEMERAL) and context.get("channel_id") and context.get("user_id"):
            context["respond"] = EphemeralRespond(client, context["channel_id"], context["user_id"])
        if INBOX_SAID in context:
            context["ack"] = InboxAck(str(context[INBOX_SAID]), context.get("respond"))
        token = request_id.set(rid)
        try:
            return await next()
        finally:
            request_id.reset(token)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], context: dict[str, Any]) -> None:
        log.error("unhandled error in a listener", exc_info=error,
                  extra={"request_id": context.get("request_id")})

    listeners.register(app, services)
    return app

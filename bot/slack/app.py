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
from bot.slack.listeners.context import SharedSessionRespond, new_request_id

log = logging.getLogger("bot.slack")


def build_app(services: Services, client: AsyncWebClient, signing_secret: str | None) -> AsyncApp:
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=False,
        ignoring_self_events_enabled=True,
    )

    @app.middleware
    async def with_request_id(context: dict[str, Any], next: Callable[[], Awaitable[BoltResponse]]) -> Any:
        rid = context.get("request_id") or new_request_id()
        context["request_id"] = rid
        if context.get("response_url"):
            context["respond"] = SharedSessionRespond(context.respond, services)  # type: ignore[attr-defined]
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

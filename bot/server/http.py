"""HTTP mode: POST /slack/events, GET /healthz, GET /metrics, POST /webhooks/telnyx and /webhooks/twilio."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_internals import build_async_context
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.operations.services import Services
from bot.slack.listeners.context import new_request_id

log = logging.getLogger("bot.server.http")

Webhook = Callable[[Request], Awaitable[Response]]


def build_asgi(
    app: AsyncApp,
    services: Services,
    signing_secret: str,
    *,
    on_start: Callable[[], Awaitable[None]] | None = None,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    scheduler_running: Callable[[], bool] = lambda: True,
    telnyx_webhook: Webhook | None = None,
    twilio_webhook: Webhook | None = None,
    previous_signing_secret: str | None = None,
) -> Starlette:
    # Slack signs with one secret; while it is being rotated (SLACK_SIGNING_SECRET_PREVIOUS), a request
    # signed with the one before is still Slack's: retries in flight, replicas not yet restarted.
    verifiers = [SignatureVerifier(secret) for secret in (signing_secret, previous_signing_secret) if secret]

    async def events(request: Request) -> Response:
        body = await request.body()
        signature = request.headers.get("x-slack-signature", "")
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        try:
            valid = any(verifier.is_valid(body, timestamp, signature) for verifier in verifiers)
        except ValueError:  # a missing or non-numeric timestamp
            valid = False
        if not valid:
            log.warning("refused a Slack request with a bad or stale signature")
            return JSONResponse({"error": "invalid request"}, status_code=401)
        # A replayed request (same body and signature) and Slack's own retry (the same body signed
        # anew, with X-Slack-Retry-Num) are handled once: the key is the body itself, which Slack
        # makes unique per request (trigger_id, response_url, event_id).
        retry = request.headers.get("x-slack-retry-num")
        key = f"slack:{hashlib.sha256(body).hexdigest()}"
        if not await services.db(services.store.first_time, key, urgent=True):  # the ack waits for it
            log.info("ignored a replayed Slack request", extra={"retry": retry})
            return Response(status_code=200)
        bolt_request = to_async_bolt_request(request, body, {"request_id": new_request_id()})
        if not bolt_request.body and b"payload" in body and not body.lstrip().startswith(b"{"):
            # slack-bolt reads any form body containing the word "payload" as an interaction and
            # finds none in, say, `/sms help payload`: parse it as the plain form it is.
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if "payload" not in form:
                bolt_request.body = form
                bolt_request.context = build_async_context(bolt_request.context, form)
        return to_starlette_response(await app.async_dispatch(bolt_request))

    async def healthz(_request: Request) -> Response:
        checks: dict[str, Any] = {}
        try:
            await services.db(_ping_db, services)
            checks["database"] = "ok"
        except Exception as error:  # any failure means unhealthy; say which
            checks["database"] = f"error: {type(error).__name__}"
        checks["scheduler"] = "ok" if scheduler_running() else "stopped"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if healthy else "unhealthy", **checks},
                            status_code=200 if healthy else 503)

    async def metrics(_request: Request) -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/slack/events", events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if telnyx_webhook is not None:
        routes.append(Route("/webhooks/telnyx", telnyx_webhook, methods=["POST"]))
    if twilio_webhook is not None:
        routes.append(Route("/webhooks/twilio", twilio_webhook, methods=["POST"]))

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if on_start is not None:
            await on_start()
        try:
            yield
        finally:
            if on_stop is not None:
                await on_stop()

    return Starlette(routes=routes, lifespan=lifespan)


def _ping_db(services: Services) -> None:
    started = time.perf_counter()
    with services.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    if time.perf_counter() - started > 5:
        raise TimeoutError("database slow")

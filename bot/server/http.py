"""HTTP mode: POST /slack/events, GET /healthz, GET /metrics, POST /webhooks/telnyx and /webhooks/twilio."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from slack_bolt.adapter.starlette.async_handler import to_async_bolt_request, to_starlette_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_internals import build_async_context
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook.async_client import AsyncWebhookClient
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.infra.metrics import ACK_SECONDS, COMMANDS
from bot.operations.services import Services
from bot.server.inbox import Inbox
from bot.slack.front import front, queued_note, with_queue
from bot.slack.listeners.context import new_request_id
from db.models import InboxItem

log = logging.getLogger("bot.server.http")

Webhook = Callable[[Request], Awaitable[Response]]

# A request with this many queued ahead of it is told so in its ack (fewer: a worker is about to take it).
QUEUED_NOTE_FROM = 3


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
    inbox: Inbox | None = None,
) -> Starlette:
    """`inbox`: where Slack requests are queued for the workers; None (a side server) hands them to
    `app` in line."""
    # Slack signs with one secret; while it is being rotated (SLACK_SIGNING_SECRET_PREVIOUS), a request
    # signed with the one before is still Slack's: retries in flight, replicas not yet restarted.
    verifiers = [SignatureVerifier(secret) for secret in (signing_secret, previous_signing_secret) if secret]

    async def events(request: Request) -> Response:
        started = time.perf_counter()
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
        content_type = request.headers.get("content-type", "")
        settings = services.settings
        said = front(body, content_type, services.now(), settings.default_tz, settings.default_region,
                     lambda user: (services.permissions.is_admin(user), services.permissions.may_read_all_audit(user)))
        if said.in_line or inbox is None:
            return await _in_line(app, services, request, body)
        if not said.queue:  # /sms help or a usage error: the ack is the whole answer
            if said.counted is not None:
                COMMANDS.labels(command=said.counted[0], outcome=said.counted[1]).inc()
            ACK_SECONDS.labels(kind=said.kind).observe(time.perf_counter() - started)
            return JSONResponse(said.answer)
        # The one write in front of the ack: the replay check (a replayed body, or Slack's retry of the same
        # body signed anew, is queued once) and the durable request, in one insert. The work is the
        # workers' (bot/server/inbox.py), in this process or another.
        rid = new_request_id()
        item = InboxItem(key=f"slack:{hashlib.sha256(body).hexdigest()}", request_id=rid, kind=said.kind,
                         content_type=content_type[:64], body=body.decode("utf-8", "replace"),
                         received_at=services.now())

        def ack_text(ahead: int) -> str:  # kept with the request: its worker does not repeat it
            return str((with_queue(said.answer, ahead if ahead >= QUEUED_NOTE_FROM else 0) or {}).get("text", ""))

        try:
            ahead = await services.db_for_ack(services.store.enqueue_request, item, ack_text)
        except Exception:  # not durable: say so, and let Slack (or the user) try again
            log.exception("could not queue a Slack request", extra={"request_id": rid})
            return JSONResponse({"error": "busy"}, status_code=503)
        if ahead is None:
            log.info("ignored a replayed Slack request", extra={"retry": request.headers.get("x-slack-retry-num")})
            return Response(status_code=200)
        inbox.wake()
        if ahead >= QUEUED_NOTE_FROM and said.kind == "action" and said.response_url:
            # a click's ack has no text: tell its user by response_url, after the ack
            _background(_tell_queued(services, said.response_url, ahead))
        answer = with_queue(said.answer, ahead if ahead >= QUEUED_NOTE_FROM else 0)
        return JSONResponse(answer) if answer is not None else Response(status_code=200)

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


async def _in_line(app: AsyncApp, services: Services, request: Request, body: bytes) -> Response:
    """A modal's submission, a menu's options, a URL check: Bolt answers in the ack itself (the replay
    check first, as for a queued request)."""
    key = f"slack:{hashlib.sha256(body).hexdigest()}"
    if not await services.db_for_ack(services.store.first_time, key, urgent=True):
        log.info("ignored a replayed Slack request", extra={"retry": request.headers.get("x-slack-retry-num")})
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


_TASKS: set[asyncio.Task[None]] = set()


def _background(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


async def _tell_queued(services: Services, response_url: str, ahead: int) -> None:
    try:
        client = AsyncWebhookClient(url=response_url, session=services.webhooks.get())
        await client.send_dict({"text": queued_note(ahead), "response_type": "ephemeral",
                                "replace_original": False})
    except Exception:  # a courtesy: the request itself is queued and will be answered
        log.warning("could not tell a click's user that it is queued", exc_info=True)


def _ping_db(services: Services) -> None:
    started = time.perf_counter()
    with services.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    if time.perf_counter() - started > 5:
        raise TimeoutError("database slow")

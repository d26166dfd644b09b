"""Wire a whole bot from settings: database, providers, Slack app, reminders; start and stop it."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette

from bot.domain.clock import Clock, SystemClock
from bot.infra import logs
from bot.infra.settings import Settings
from bot.operations.services import Services
from bot.providers.base import Provider, ProviderName
from bot.providers.registry import build_providers
from bot.reminders import Reminders
from bot.server.http import build_asgi
from bot.server.inbox import Inbox
from bot.slack.app import build_app
from bot.slack.notifier import SlackNotifier
from bot.slack.tz import TimeZones
from bot.slack.usergroups import UserGroups
from db.engine import make_engine
from db.migrate import upgrade

log = logging.getLogger("bot")

RECONCILE_EVERY = 30.0  # seconds between passes for intents left by a replica that died
PERIODIC_MIN_AGE = timedelta(minutes=2)


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        providers: dict[ProviderName, Provider] | None = None,
        run_reminders: bool = True,
        role: str = "bot",
    ) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url)
        token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
        self.client = AsyncWebClient(token=token, base_url=settings.slack_api_url)
        self.services = Services(
            settings=settings,
            engine=self.engine,
            providers=providers if providers is not None else build_providers(settings),
            clock=clock or SystemClock(),
            notifier=SlackNotifier(self.client),
        )
        self.services.tz_of = TimeZones(self.client).get
        self.services.group_members = UserGroups(self.client, self.services.now).members
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        self.signing_secret = secret
        previous = settings.slack_signing_secret_previous
        self.previous_signing_secret = previous.get_secret_value() if previous else None
        logs.quiet_bolt()
        # Every request is verified where it arrives (bot/server/http.py), against the current and, during a
        # rotation, the previous signing secret; Bolt's own check knows only one, so it is left off.
        self.app = build_app(self.services, self.client, None)
        # Slack requests are queued before their ack (bot/server/http.py) and worked on by the inbox's
        # workers, which dispatch them to an app of their own (it returns when the listener is done).
        self.worker_app = build_app(self.services, self.client, None, queued=True)
        self.inbox = Inbox(self.services, self.worker_app, workers=settings.inbox_workers,
                           lease=settings.inbox_lease, role=role)
        self.reminders: Reminders | None = None
        if run_reminders:
            self.reminders = Reminders(self.services)
            self.services.reminders = self.reminders
        self._janitor: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._held: asyncio.Task[None] | None = None

    def migrate(self) -> None:
        upgrade(self.settings.database_url)

    async def start(self) -> None:
        await asyncio.to_thread(self.migrate)
        if self.reminders is not None:
            self.reminders.start()
        from bot.operations.reconcile import reconcile

        try:
            await reconcile(self.services)
        except Exception:  # reconciliation must never keep the bot from starting
            log.exception("reconciliation on start failed")
        # after reconciliation: a request interrupted by a crash is taken again once its provider calls
        # in flight are settled
        self.inbox.start()
        self._janitor = asyncio.create_task(self._forget_old_requests())
        self._reconciler = asyncio.create_task(self._reconcile_periodically())
        self._held = asyncio.create_task(self._submit_held_periodically())
        log.info("bot started", extra={"providers": sorted(self.services.providers), "pid": os.getpid()})

    async def stop(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
        if self._reconciler is not None:
            self._reconciler.cancel()
        await self.inbox.stop()
        if self._held is not None:
            self._held.cancel()
        if self.reminders is not None:
            self.reminders.shutdown()
        await self.services.aclose()
        self.engine.dispose()

    def scheduler_running(self) -> bool:
        return self.reminders is None or bool(self.reminders.running)

    def asgi(self, telnyx_webhook: Callable[..., Any] | None = None) -> Starlette:
        if self.signing_secret is None:
            raise SystemExit("SLACK_SIGNING_SECRET is required in HTTP mode")
        if telnyx_webhook is None:
            from bot.server.webhooks import telnyx_webhook_endpoint

            telnyx_webhook = telnyx_webhook_endpoint(self.services)
        from bot.server.webhooks import twilio_webhook_endpoint

        return build_asgi(self.app, self.services, self.signing_secret, on_start=self.start, on_stop=self.stop,
                          scheduler_running=self.scheduler_running, telnyx_webhook=telnyx_webhook,
                          twilio_webhook=twilio_webhook_endpoint(self.services),
                          previous_signing_secret=self.previous_signing_secret, inbox=self.inbox)

    async def _reconcile_periodically(self) -> None:
        """Intents left open by a replica that died while this one runs are settled here too. A
        provider call is bounded by its timeouts and retries (well under 2 minutes), so a provider
        intent is only touched once it is at least that old; a whole-request record only after 30
        minutes (a request may run long; by then Slack's response_url has expired anyway)."""
        from bot.operations.reconcile import reconcile

        while True:
            await asyncio.sleep(RECONCILE_EVERY)
            try:
                await reconcile(self.services, min_age=max(self.settings.reconcile_after, PERIODIC_MIN_AGE),
                                request_min_age=timedelta(minutes=30))
            except Exception:
                log.exception("periodic reconciliation failed")

    async def _submit_held_periodically(self) -> None:
        """Held sends that are due go to their provider; every replica runs this, and the conditional claim
        in bot/operations/held.py lets exactly one of them make the call. The first pass is at start, so
        sends that fell due while no replica ran go out at once."""
        from bot.operations.held import submit_due
        from bot.operations.held_approval import expire_due

        while True:
            try:
                await expire_due(self.services)  # first: an expired approval hold is never submitted
                await submit_due(self.services)
            except Exception:
                log.exception("submitting held sends failed")
            await asyncio.sleep(self.settings.held_poll_seconds)

    async def _forget_old_requests(self) -> None:
        while True:
            await asyncio.sleep(300)
            cutoff = self.services.now() - timedelta(minutes=15)
            try:
                await self.services.db(self.services.store.forget_seen_before, cutoff)
                await self.services.db(self.services.store.forget_settled_before, cutoff)
            except Exception:
                log.exception("could not prune seen requests")


def asgi_from_environment() -> Starlette:
    """The HTTP app of one of WEB_CONCURRENCY processes (uvicorn's factory, called in each): its settings,
    logs and runtime built anew from the environment, as `python -m bot` builds them."""
    settings = Settings()
    logs.setup(settings.log_level, settings.secrets())
    return Runtime(settings).asgi()

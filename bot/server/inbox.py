"""The inbox's workers: every Slack request is made durable before its ack (bot/server/http.py, one
insert into `slack_inbox`), and its work (permission, policy, ledger, provider call, answer) is done
here, by INBOX_WORKERS tasks in each bot process and by any `smsops worker` process on the same
database (PostgreSQL: they take rows with FOR UPDATE SKIP LOCKED).

A worker holds a request under a lease it renews while the work runs; if its process dies, the lease
runs out and another worker takes the request again. What the retake does depends on how far the
first attempt got: if it recorded nothing and opened no provider call, the request is simply run again;
otherwise it is not repeated (a provider call is made at most once per intent): its channel is told
what was recorded, and any provider call left in flight is settled by reconciliation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.infra.logs import request_id as request_id_var
from bot.operations.reconcile import REQUEST, settle, tell_interrupted
from bot.operations.services import Services
from bot.slack.app import INBOX_EPHEMERAL, INBOX_SAID
from bot.slack.front import read_form
from bot.slack.listeners.context import HELD_BY_INBOX, quoted
from db.models import InboxItem, Intent

log = logging.getLogger("bot.server.inbox")

RESPONSE_URL_LIFETIME = timedelta(minutes=29)  # Slack's is 30 minutes: keep a margin for the answer
# An idle worker looks again after IDLE_POLL, then twice as long each time it finds nothing, up to
# IDLE_POLL_MAX: requests queued by another process are found within about IDLE_POLL_MAX / workers, and an
# idle process does not hammer the database (each look is a write transaction). A request queued in this
# process wakes one idle worker at once (`wake`).
IDLE_POLL = 0.2
IDLE_POLL_MAX = 2.0
SOCKET_CONTENT_TYPE = "socket_mode"  # a Socket Mode payload, stored as its JSON


def taker_name(role: str) -> str:
    return f"{role}:{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Inbox:
    def __init__(self, services: Services, app: AsyncApp, *, workers: int, lease: timedelta,
                 role: str = "bot") -> None:
        self.services = services
        self.app = app
        self.workers = workers
        self.lease = lease
        self.role = role
        self._wake: asyncio.Queue[None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self.handled = 0

    def wake(self) -> None:
        """A request was just queued in this process: one idle worker takes it now rather than at its poll."""
        if self._wake.qsize() < max(self.workers, 1):
            self._wake.put_nowait(None)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(taker_name(f"{self.role}{n}"))) for n in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self, taker: str) -> None:
        store = self.services.store
        idle = IDLE_POLL
        while True:
            try:
                item = await self.services.db(store.take_request, taker, self.services.now() + self.lease)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not take a request from the inbox")
                await asyncio.sleep(1.0)
                continue
            if item is None:
                try:
                    await asyncio.wait_for(self._wake.get(), idle)
                    idle = IDLE_POLL
                except TimeoutError:
                    idle = min(idle * 2, IDLE_POLL_MAX)
                continue
            idle = IDLE_POLL
            await self.handle(item, taker)

    async def handle(self, item: InboxItem, taker: str) -> None:
        assert item.seq is not None
        token = request_id_var.set(item.request_id)
        held = HELD_BY_INBOX.set(True)
        keeper = asyncio.create_task(self._keep(item.seq, taker))
        try:
            if item.attempts <= 1 or await self._again(item):
                await self._dispatch(item)
        except Exception:  # the listeners answer their own errors; this is the plumbing's
            log.exception("could not work on a queued request", extra={"request_id": item.request_id})
        finally:
            keeper.cancel()
            HELD_BY_INBOX.reset(held)
            request_id_var.reset(token)
        try:
            await self.services.db(self.services.store.settle_request, item.seq, taker)
            self.handled += 1
        except Exception:
            log.exception("could not settle a queued request", extra={"request_id": item.request_id})

    async def _keep(self, seq: int, taker: str) -> None:
        """Renew the lease while the work runs, so no other worker takes the request over."""
        every = max(self.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            try:
                await self.services.db(self.services.store.renew_request, seq, taker,
                                       self.services.now() + self.lease)
            except Exception:
                log.exception("could not renew the lease of a queued request")

    async def _again(self, item: InboxItem) -> bool:
        """A request whose worker died: run it again only if the first attempt left no trace."""
        store = self.services.store
        rid = item.request_id
        recorded = await self.services.db(store.entries_for_request, rid, 1)
        open_intents = await self.services.db(store.open_intents)
        # a request record of its own: written by a bot of an earlier version (now the inbox row is the record)
        mine = [i for i in open_intents if i.operation == REQUEST and _request_of(i) == rid]
        form = read_form(item.body.encode(), item.content_type)
        actor = _actor(form)
        # Any provider call started for it counts, open or closed: reconciliation on start (before the
        # workers) closes one left in flight, and the provider may have acted on it. An intent carries no
        # request id, so the same user's other requests since this one arrived count too: the safe side.
        called = [i for i in await self.services.db(store.intents_started_since, actor[:64], item.received_at)
                  if i.operation != REQUEST]
        if not recorded and not called:
            log.info("running an interrupted request again", extra={"request_id": rid, "attempt": item.attempts})
            for intent in mine:  # the new attempt opens its own record
                await self.services.db(store.close_intent, intent.id)
            return True
        log.info("an interrupted request went too far to repeat; telling its channel",
                 extra={"request_id": rid, "attempt": item.attempts})
        for intent in mine:
            await settle(self.services, intent)
        if not mine:
            await tell_interrupted(self.services, actor=actor, channel=_channel(form), request_id=rid,
                                   what=_described(form))
        return False

    async def _dispatch(self, item: InboxItem) -> None:
        context: dict[str, Any] = {"request_id": item.request_id, INBOX_SAID: item.ack_text}
        if self.services.now() - item.received_at > RESPONSE_URL_LIFETIME:
            context[INBOX_EPHEMERAL] = True
        if item.content_type == SOCKET_CONTENT_TYPE:
            request = AsyncBoltRequest(body=json.loads(item.body), mode="socket_mode", context=context)
        else:
            request = AsyncBoltRequest(body=item.body, headers={"content-type": [item.content_type]},
                                       context=context)
            if not request.body and "payload" in item.body and not item.body.lstrip().startswith("{"):
                # slack-bolt reads any form body containing the word "payload" as an interaction and
                # finds none in, say, `/sms help payload`: parse it as the plain form it is.
                form = dict(parse_qsl(item.body, keep_blank_values=True))
                if "payload" not in form:
                    request.body = form
                    request.context = build_async_context(request.context, form)
        if request.context.get("response_url") is None and context.get(INBOX_EPHEMERAL):
            request.context.pop(INBOX_EPHEMERAL, None)
        await self.app.async_dispatch(request)


def _request_of(intent: Intent) -> str:
    try:
        info = json.loads(intent.payload or "{}")
    except ValueError:
        return ""
    return str(info.get("request_id") or "") if isinstance(info, dict) else ""


def _actor(form: dict[str, Any]) -> str:
    user = form.get("user_id") or form.get("user") or ""
    if isinstance(user, dict):
        user = user.get("id") or ""
    return str(user)


def _channel(form: dict[str, Any]) -> str | None:
    channel = form.get("channel_id") or form.get("channel") or (form.get("container") or {}).get("channel_id")
    if isinstance(channel, dict):
        channel = channel.get("id")
    return str(channel) if channel else None


def _described(form: dict[str, Any]) -> str:
    """The request in the user's terms, for the notice that it was interrupted."""
    if "command" in form:
        return quoted(f"{form.get('command') or '/sms'} {form.get('text') or ''}")
    actions = form.get("actions") or []
    if actions and isinstance(actions[0], dict):
        action = actions[0]
        label = action.get("text")
        label = str((label.get("text") if isinstance(label, dict) else label) or action.get("action_id") or "a button")
        value = str(action.get("value") or "")
        return f"{quoted(label)} click" + (f" on {quoted(value)}" if value else "")
    return "request"

"""The things every operation needs, built once per process and passed down."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp
from sqlalchemy import Engine

from bot.domain.clock import Clock, SystemClock
from bot.domain.policy import Permissions
from bot.infra.loop_session import LoopSession
from bot.infra.settings import Settings
from bot.operations.notify import Notifier, NullNotifier
from bot.providers.base import Provider, ProviderName
from db.models import TrackedSend
from db.store import Store

T = TypeVar("T")


class ReminderPlanner(Protocol):
    def plan(self, send: TrackedSend) -> None: ...

    def drop(self, send_id: str) -> None: ...


# Threads for the database calls an ack waits for (the inbox's insert, the replay check): their own, so
# that an ack never queues behind the workers' calls, which fill asyncio's default executor under load.
ACK_THREADS = 4

WEBHOOK_TIMEOUT = 30.0  # slack_sdk's own default for a webhook


def webhook_sessions() -> LoopSession:
    """The session for the answers posted to Slack's response_url: slack_sdk opens (and closes) a
    session, with its connector, per answer unless it is given one."""
    return LoopSession(lambda: aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT)))


class NoReminders:
    def plan(self, send: TrackedSend) -> None:
        return None

    def drop(self, send_id: str) -> None:
        return None


@dataclass
class Services:
    settings: Settings
    engine: Engine
    providers: dict[ProviderName, Provider]
    clock: Clock = field(default_factory=SystemClock)
    notifier: Notifier = field(default_factory=NullNotifier)
    reminders: ReminderPlanner = field(default_factory=NoReminders)
    tz_of: Callable[[str], Any] | None = None  # async (user id) -> IANA zone name, set by the Slack layer
    # async (@handle) -> the user group's member ids now, set by the Slack layer (approval rules)
    group_members: Callable[[str], Any] | None = None
    webhooks: LoopSession = field(default_factory=webhook_sessions)
    _ack_threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(ACK_THREADS, thread_name_prefix="smsops-ack"), repr=False)

    def __post_init__(self) -> None:
        self.store = Store(self.engine, self.clock)
        self.permissions = Permissions(
            admins=self.settings.sms_admins,
            auditors=self.settings.sms_auditors,
            require_second_approver=self.settings.sms_require_second_approver,
        )

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a (blocking) database call off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def db_for_ack(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A database call an ack waits for, on the ack's own threads (see ACK_THREADS)."""
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._ack_threads, call)

    def now(self) -> Any:
        return self.clock.now()

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        await self.webhooks.aclose()
        self._ack_threads.shutdown(wait=False)

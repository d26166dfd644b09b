"""A bot's services without Slack: real database, fake Telnyx, a notifier that records cards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bot.domain.results import Card
from bot.infra.settings import Settings
from bot.operations.services import Services
from bot.providers.registry import build_providers
from bot.reminders import Reminders
from bot.sandbox.telnyx import FakeTelnyx
from db.engine import make_engine
from db.migrate import upgrade
from db.models import LedgerEntry, ReminderClaim, TrackedSend
from db.store import new_id


def stored_jobs(reminders: Reminders, batch_id: str) -> list[str]:
    """The reminder jobs stored for a batch, as the job table holds them."""
    table = reminders.store.jobs_t
    with reminders.engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(sa_select(table.c.id).where(reminders._of_batch(batch_id))))


@dataclass
class RecordingNotifier:
    cards: list[tuple[str, Card]] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    async def post_card(self, channel: str, card: Card) -> str | None:
        if self.fail:
            return None
        self.cards.append((channel, card))
        return f"{len(self.cards)}.000001"

    async def update_card(self, channel: str, ts: str, card: Card) -> bool:
        return True

    async def post_text(self, channel: str, text: str) -> str | None:
        self.texts.append((channel, text))
        return "1.0"


def make_services(url: str, telnyx: FakeTelnyx, **settings: Any) -> Services:
    values: dict[str, Any] = {
        "database_url": url, "telnyx_api_key": telnyx.api_key, "telnyx_base_url": telnyx.base_url,
        "telnyx_from": "+18445550001", "reminder_leads": "1h,10m", "provider_read_timeout": 3.0,
    }
    values.update(settings)
    s = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return Services(settings=s, engine=make_engine(url), providers=build_providers(s), notifier=RecordingNotifier())


def tracked(services: Services, telnyx: FakeTelnyx, send_at: datetime, batch_id: str | None = None,
            count: int = 1, channel: str | None = "C0OPS0001", owner: str = "U0ALICE01") -> list[TrackedSend]:
    """Messages scheduled at the fake Telnyx and in the ledger's tracked sends, as one batch."""
    batch_id = batch_id or new_id()
    now = datetime.now(UTC)
    sends = []
    for i in range(count):
        target = telnyx.add_message(send_at=send_at, to=f"+1866555{i:04d}")
        sends.append(TrackedSend(
            id=new_id(), provider="telnyx", target=target, batch_id=batch_id, state="scheduled",
            provider_status="scheduled", send_at=send_at, recipient_count=1, text_preview="Doors open at 10",
            created_by=owner, channel=channel, created_at=now, updated_at=now))
    services.store.add_sends(sends, [])
    return sends


def ledger(services: Services) -> list[LedgerEntry]:
    with Session(services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq))))


def claims(services: Services) -> list[ReminderClaim]:
    with Session(services.engine) as session:
        return list(session.exec(select(ReminderClaim)))


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


@asynccontextmanager
async def running_reminders(url: str, telnyx: FakeTelnyx, *, sweep: bool = True
                            ) -> AsyncIterator[tuple[Services, Reminders]]:
    """A migrated database, the bot's services on it and a started Reminders (polling every 0.5 s)."""
    upgrade(url)
    services = make_services(url, telnyx)
    reminders = Reminders(services, poll_seconds=0.5, sweep=sweep)
    services.reminders = reminders
    reminders.start()
    try:
        yield services, reminders
    finally:
        reminders.shutdown()
        await services.aclose()
        services.engine.dispose()


@pytest.fixture
async def world(sqlite_url: str, telnyx: FakeTelnyx) -> AsyncIterator[tuple[Services, Reminders]]:
    async with running_reminders(sqlite_url, telnyx) as (services, reminders):
        assert reminders.swept is not None
        assert await reminders.swept == 0  # an empty database: nothing to catch up on
        yield services, reminders

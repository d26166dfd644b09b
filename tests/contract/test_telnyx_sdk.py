"""The official Telnyx SDK (PyPI `telnyx`, AsyncTelnyx) as a client of our fake, and the bot's requests
compared with the SDK's for the same operations: schedule (with send_at), retrieve, cancel scheduled.
Every operation the bot uses is reachable through the SDK."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import telnyx

from bot.providers.base import ScheduleRequest
from bot.providers.telnyx import TelnyxClient
from bot.sandbox.telnyx import FakeTelnyx

SENDER = "+18445550001"


@pytest.fixture
def fake() -> Iterator[FakeTelnyx]:
    server = FakeTelnyx().start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_sdk_drives_every_operation_the_bot_uses(fake: FakeTelnyx) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    sdk = telnyx.AsyncTelnyx(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    try:
        scheduled = await sdk.messages.schedule(to="+18665550001", from_=SENDER, text="hi", send_at=send_at)
        assert scheduled.data is not None and scheduled.data.id is not None
        message_id = scheduled.data.id
        got = await sdk.messages.retrieve(message_id)
        assert got.data is not None and got.data.to is not None and got.data.to[0].status == "scheduled"
        cancelled = await sdk.messages.cancel_scheduled(message_id)
        assert cancelled.to is not None and cancelled.to[0].status == "cancelled"
    finally:
        await sdk.close()
    assert fake.spec_violations == []


async def test_the_bot_sends_what_the_sdk_sends(fake: FakeTelnyx) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    sdk = telnyx.AsyncTelnyx(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    bot = TelnyxClient(fake.api_key, base_url=fake.base_url, sender=SENDER)
    try:
        sdk_made = await sdk.messages.schedule(to="+18665550001", from_=SENDER, text="hi", send_at=send_at)
        assert sdk_made.data is not None and sdk_made.data.id is not None
        outcome = await bot.schedule(ScheduleRequest(to=("+18665550001",), text="hi", send_at=send_at,
                                                     key="contract01"))
        bot_id = outcome.scheduled[0].id
        await sdk.messages.retrieve(sdk_made.data.id)
        await bot.status(bot_id)
        await sdk.messages.cancel_scheduled(sdk_made.data.id)
        await bot.cancel(bot_id)
    finally:
        await sdk.close()
        await bot.aclose()

    requests = fake.server.requests
    pairs = [(requests[0], requests[1]), (requests[2], requests[3]), (requests[4], requests[5])]
    for theirs, ours in pairs:
        assert theirs.method == ours.method
        assert theirs.path.replace(sdk_made.data.id, "{id}") == ours.path.replace(bot_id, "{id}")
        assert theirs.headers["authorization"] == ours.headers["authorization"]  # Bearer <key>
        assert theirs.headers.get("accept") == ours.headers.get("accept") == "application/json"
        # The one deliberate difference: the SDK sends no Idempotency-Key; the bot sends the intent's on
        # its schedule POST (see bot/providers/telnyx.py), nothing else.
        assert "idempotency-key" not in theirs.headers
        assert ("idempotency-key" in ours.headers) == (ours.method == "POST")
    theirs_body, ours_body = pairs[0][0].json(), pairs[0][1].json()
    assert theirs_body.keys() == ours_body.keys()
    assert theirs_body["to"] == ours_body["to"] and theirs_body["from"] == ours_body["from"]
    # the same instant; the SDK writes it ISO 8601 with an offset, the bot with Z: both RFC 3339 date-times
    assert datetime.fromisoformat(theirs_body["send_at"].replace("Z", "+00:00")) == datetime.fromisoformat(
        ours_body["send_at"].replace("Z", "+00:00"))
    assert pairs[0][0].headers["content-type"].startswith("application/json")
    assert pairs[0][1].headers["content-type"].startswith("application/json")
    assert fake.spec_violations == []

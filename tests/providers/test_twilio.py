"""TwilioClient against FakeTwilio over real HTTP: auth, the schedule form, states, cancel rules, 429s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest

from bot.domain.clock import FrozenClock
from bot.providers.base import ErrorKind, ProviderError, ScheduleRequest, SendState
from bot.providers.http import RetryPolicy
from bot.providers.twilio import TwilioClient
from bot.sandbox.twilio import FakeTwilio

FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_wait=5.0)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def fake_twilio(clock: FrozenClock) -> Iterator[FakeTwilio]:
    fake = FakeTwilio(now=clock.now).start()
    try:
        yield fake
    finally:
        fake.stop()


def make_client(fake: FakeTwilio, **overrides: Any) -> TwilioClient:
    options: dict[str, Any] = {
        "auth_token": fake.auth_token, "messaging_service_sid": fake.messaging_service_sid,
        "base_url": fake.base_url, "connect_timeout": 1.0, "read_timeout": 2.0, "retry": FAST_RETRY,
    }
    options.update(overrides)
    return TwilioClient(options.pop("account_sid", fake.account_sid), **options)


@pytest.fixture
async def twilio_client(fake_twilio: FakeTwilio) -> AsyncIterator[TwilioClient]:
    client = make_client(fake_twilio)
    try:
        yield client
    finally:
        await client.aclose()


def request(clock: FrozenClock, *to: str, minutes: int = 60) -> ScheduleRequest:
    return ScheduleRequest(to=to, text="Your table is ready at 8 🍝", send_at=clock.now() + timedelta(minutes=minutes))


async def test_schedule_posts_the_scheduling_form_and_keeps_the_send_time(
    fake_twilio: FakeTwilio, twilio_client: TwilioClient, clock: FrozenClock
) -> None:
    outcome = await twilio_client.schedule(request(clock, "+15558675310", "+15558675311", minutes=90))

    assert [s.state for s in outcome.scheduled] == [SendState.SCHEDULED, SendState.SCHEDULED]
    assert outcome.failed == [] and outcome.unknown == []
    first = outcome.scheduled[0]
    assert first.id.startswith("SM") and len(first.id) == 34
    assert first.send_at == clock.now() + timedelta(minutes=90)
    assert fake_twilio.send_at_of(first.id) == clock.now() + timedelta(minutes=90)
    posts = fake_twilio.server.requests_to("POST", "/Messages.json")
    assert len(posts) == 2
    assert posts[0].headers["content-type"].startswith("application/x-www-form-urlencoded")
    form = {k: v[0] for k, v in parse_qs(posts[0].body.decode()).items()}
    assert form["ScheduleType"] == "fixed"
    assert form["SendAt"] == (clock.now() + timedelta(minutes=90)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert form["MessagingServiceSid"] == fake_twilio.messaging_service_sid
    assert form["Body"] == "Your table is ready at 8 🍝"
    assert {fake_twilio.messages[s.id]["to"] for s in outcome.scheduled} == {"+15558675310", "+15558675311"}


async def test_an_api_key_and_secret_work_as_well_as_the_auth_token(
    fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    client = make_client(fake_twilio, auth_token=None, api_key=fake_twilio.api_key,
                         api_secret=fake_twilio.api_secret)
    try:
        outcome = await client.schedule(request(clock, "+15558675310"))
        await client.ping()
    finally:
        await client.aclose()
    assert outcome.scheduled[0].status == "scheduled"


async def test_wrong_credentials_are_an_auth_error_with_twilios_code(fake_twilio: FakeTwilio) -> None:
    client = make_client(fake_twilio, auth_token="0" * 32)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.ping()
    finally:
        await client.aclose()
    assert caught.value.kind is ErrorKind.AUTH
    assert caught.value.code == "20003"
    assert caught.value.http_status == 401


async def test_the_window_is_twilios_own_when_the_bot_is_bypassed(
    twilio_client: TwilioClient, clock: FrozenClock
) -> None:
    with pytest.raises(ProviderError) as caught:
        await twilio_client.schedule(request(clock, "+15558675310", minutes=10))
    assert caught.value.code == "35114"
    assert "900 seconds" in caught.value.message
    assert caught.value.kind is ErrorKind.REJECTED


async def test_without_a_messaging_service_nothing_is_sent(
    fake_twilio: FakeTwilio, clock: FrozenClock
) -> None:
    client = make_client(fake_twilio, messaging_service_sid=None)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.schedule(request(clock, "+15558675310"))
    finally:
        await client.aclose()
    assert "TWILIO_MESSAGING_SERVICE_SID" in caught.value.message
    assert fake_twilio.server.requests == []


async def test_one_bad_number_fails_alone(twilio_client: TwilioClient, clock: FrozenClock) -> None:
    outcome = await twilio_client.schedule(request(clock, "+15558675310", "+0123"))
    assert len(outcome.scheduled) == 1
    [(recipient, error)] = outcome.failed
    assert recipient == "+0123" and error.code == "21211"


async def test_status_follows_the_message_to_delivered(
    fake_twilio: FakeTwilio, twilio_client: TwilioClient, clock: FrozenClock
) -> None:
    sid = fake_twilio.add_message(send_at=clock.now() + timedelta(minutes=30), to="+15558675399", body="hi")
    state = await twilio_client.status(sid)
    assert (state.state, state.status, state.recipients, state.text) == (
        SendState.SCHEDULED, "scheduled", ("+15558675399",), "hi")
    assert state.send_at is None  # Twilio's Message resource has no send time

    clock.advance(timedelta(minutes=31))
    assert (await twilio_client.status(sid)).state is SendState.SENT


@pytest.mark.parametrize(("word", "expected"), [
    ("undelivered", SendState.FAILED), ("failed", SendState.FAILED), ("read", SendState.SENT),
])
async def test_final_words_map_to_states(fake_twilio: FakeTwilio, twilio_client: TwilioClient, clock: FrozenClock,
                                         word: str, expected: SendState) -> None:
    fake_twilio.deliver_as = word
    sid = fake_twilio.add_message(send_at=clock.now() + timedelta(minutes=20))
    clock.advance(timedelta(minutes=21))
    state = await twilio_client.status(sid)
    assert (state.state, state.status) == (expected, word)


async def test_unknown_sid_is_not_found(twilio_client: TwilioClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await twilio_client.status("SM" + "f" * 32)
    assert caught.value.kind is ErrorKind.NOT_FOUND and caught.value.code == "20404"


async def test_cancel_sets_status_canceled(
    fake_twilio: FakeTwilio, twilio_client: TwilioClient, clock: FrozenClock
) -> None:
    sid = fake_twilio.add_message(send_at=clock.now() + timedelta(hours=2))
    state = await twilio_client.cancel(sid)
    assert (state.state, state.status) == (SendState.CANCELLED, "canceled")
    assert fake_twilio.status_of(sid) == "canceled"
    [post] = fake_twilio.server.requests_to("POST", f"/Messages/{sid}.json")
    assert parse_qs(post.body.decode()) == {"Status": ["canceled"]}


async def test_a_message_no_longer_scheduled_cannot_be_cancelled_30409(
    fake_twilio: FakeTwilio, twilio_client: TwilioClient, clock: FrozenClock
) -> None:
    sid = fake_twilio.add_message(send_at=clock.now() + timedelta(minutes=20))
    clock.advance(timedelta(minutes=21))
    with pytest.raises(ProviderError) as caught:
        await twilio_client.cancel(sid)
    assert caught.value.code == "30409"
    assert caught.value.message == "This message cannot be canceled"
    assert caught.value.kind is ErrorKind.REJECTED
    assert fake_twilio.status_of(sid) == "delivered"


async def test_a_cancel_whose_answer_was_lost_is_read_as_done(
    fake_twilio: FakeTwilio, twilio_client: TwilioClient, clock: FrozenClock
) -> None:
    sid = fake_twilio.add_message(send_at=clock.now() + timedelta(hours=2))
    # the first cancel reaches Twilio, but its answer is lost: the retry gets 30409 and looks
    fake_twilio.server.faults.latency(3.0, method="POST", path_contains=sid, times=1)
    state = await twilio_client.cancel(sid)
    assert state.state is SendState.CANCELLED
    assert fake_twilio.status_of(sid) == "canceled"


async def test_a_429_is_waited_out_for_its_retry_after(fake_twilio: FakeTwilio, clock: FrozenClock) -> None:
    fake_twilio.server.faults.rate_limit(
        retry_after=1, times=1, body=b'{"code": 20429, "message": "Too Many Requests", "status": 429}')
    client = make_client(fake_twilio)
    try:
        started = time.monotonic()
        outcome = await client.schedule(request(clock, "+15558675310"))
        waited = time.monotonic() - started
    finally:
        await client.aclose()
    assert outcome.scheduled[0].status == "scheduled"
    assert waited >= 0.95
    assert len(fake_twilio.server.requests_to("POST", "/Messages.json")) == 2


async def test_a_bulk_cancel_past_the_rate_limit_waits_and_finishes(clock: FrozenClock) -> None:
    with FakeTwilio(now=clock.now, rate_limit=(5, 1.0)) as fake:
        sids = [fake.add_message(send_at=clock.now() + timedelta(hours=3)) for _ in range(12)]
        client = make_client(fake, retry=RetryPolicy(attempts=6, backoff=0.01, max_wait=5.0))
        try:
            states = await asyncio.gather(*(client.cancel(sid) for sid in sids))
        finally:
            await client.aclose()
        assert {s.status for s in states} == {"canceled"}
        assert len(fake.server.requests_to("POST")) > 12  # some were 429s, waited out, then went through

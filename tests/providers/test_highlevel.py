"""HighLevelClient against FakeHighLevel over real HTTP: states, cancel quirks, retries, spec, faults."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bot.domain.clock import FrozenClock
from bot.providers.base import ErrorKind, ProviderError, ScheduleRequest, SendState
from bot.providers.highlevel import HighLevelClient, message_state
from bot.providers.http import RetryPolicy
from bot.sandbox.highlevel import HL_SPEC, FakeHighLevel
from bot.sandbox.telnyx import load_spec

CONTACT_A = "cT9kQ2mN4pR6sV8xZ1aB"
CONTACT_B = "aB3dE5gH7jK9mN1pQ3sT"
CONTACT_C = "Zz0Yy9Xx8Ww7Vv6Uu5Tt"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_wait=5.0)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def fake_highlevel(clock: FrozenClock) -> Iterator[FakeHighLevel]:
    fake = FakeHighLevel(now=clock.now).start()
    try:
        yield fake
    finally:
        fake.stop()


def make_client(fake: FakeHighLevel, **overrides: Any) -> HighLevelClient:
    options: dict[str, Any] = {
        "base_url": fake.url,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "retry": FAST_RETRY,
    }
    options.update(overrides)
    token = options.pop("token", fake.token)
    return HighLevelClient(token, **options)


@pytest.fixture
async def highlevel_client(fake_highlevel: FakeHighLevel) -> AsyncIterator[HighLevelClient]:
    client = make_client(fake_highlevel)
    try:
        yield client
    finally:
        await client.aclose()


def request(
    clock: FrozenClock, *to: str, text: str = "Reminder: dentist at 10", minutes: int = 60
) -> ScheduleRequest:
    return ScheduleRequest(to=to, text=text, send_at=clock.now() + timedelta(minutes=minutes))


def raw_headers(fake: FakeHighLevel, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {fake.token}", **extra}


# ------------------------------------------------------------------ status


async def test_status_of_a_scheduled_message(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    when = clock.now() + timedelta(hours=3)
    message_id = fake_highlevel.add_message(scheduled_at=when, contact_id=CONTACT_A, text="hello")

    state = await highlevel_client.status(message_id)

    assert len(message_id) == 20 and message_id.isalnum()
    assert state.state is SendState.SCHEDULED
    assert state.status == "scheduled"
    assert state.recipients == (CONTACT_A,)
    # GetMessageResponseDto lists no scheduledTimestamp: the GET does not tell the time, the bot invents none
    assert state.send_at is None
    assert state.text == "hello"
    assert fake_highlevel.spec_violations == []


async def test_a_scheduled_message_is_delivered_once_its_time_passes(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    message_id = fake_highlevel.add_message(scheduled_at=clock.now() + timedelta(minutes=2))
    clock.advance(timedelta(minutes=3))

    state = await highlevel_client.status(message_id)

    assert state.state is SendState.SENT
    assert state.status == "delivered"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("scheduled", SendState.SCHEDULED),
        ("pending", SendState.SENDING),
        ("queued", SendState.SENDING),
        ("sent", SendState.SENT),
        ("delivered", SendState.SENT),
        ("read", SendState.SENT),
        ("opened", SendState.SENT),
        ("clicked", SendState.SENT),
        ("failed", SendState.FAILED),
        ("undelivered", SendState.FAILED),
        ("opt_out", SendState.FAILED),
        ("cancelled", SendState.CANCELLED),
        ("something_new", SendState.UNKNOWN),
    ],
)
def test_status_words_map_to_states(word: str, expected: SendState) -> None:
    state = message_state(
        {
            "id": "ve9EPM428h8vShlRW1KT",
            "contactId": CONTACT_A,
            "status": word,
            "scheduledTimestamp": 1669287863,
        }
    )

    assert state.state is expected
    assert state.status == word
    assert state.send_at == datetime.fromtimestamp(1669287863, tz=UTC)


async def test_status_of_an_unknown_id_is_not_found(highlevel_client: HighLevelClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await highlevel_client.status("ve9EPM428h8vShlRW1KT")

    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert caught.value.message == "Message not found"


# ------------------------------------------------------------------ cancel


async def test_cancel_a_scheduled_message(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient
) -> None:
    message_id = fake_highlevel.add_message()

    state = await highlevel_client.cancel(message_id)

    assert state.state is SendState.CANCELLED
    assert state.id == message_id
    assert fake_highlevel.messages[message_id]["status"] == "cancelled"
    deletes = fake_highlevel.server.requests_to("DELETE")
    assert [d.path for d in deletes] == [f"/conversations/messages/{message_id}/schedule"]
    assert deletes[0].headers["version"] == "2021-04-15"
    assert fake_highlevel.spec_violations == []
    with pytest.raises(ProviderError) as caught:  # HighLevel deletes a cancelled scheduled message
        await highlevel_client.status(message_id)
    assert caught.value.kind is ErrorKind.NOT_FOUND


async def test_cancel_answered_200_with_status_404_is_rejected(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient
) -> None:
    message_id = fake_highlevel.add_message(status="delivered")

    with pytest.raises(ProviderError) as caught:
        await highlevel_client.cancel(message_id)

    assert caught.value.kind is ErrorKind.REJECTED
    assert caught.value.code == "404"
    assert caught.value.message == "Failed cancel the scheduled message"
    assert caught.value.http_status == 200
    assert fake_highlevel.messages[message_id]["status"] == "delivered"
    assert len(fake_highlevel.server.requests_to("DELETE")) == 1


async def test_cancel_of_an_unknown_id_is_rejected(highlevel_client: HighLevelClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await highlevel_client.cancel("ve9EPM428h8vShlRW1KT")

    assert caught.value.kind is ErrorKind.REJECTED
    assert caught.value.code == "404"


async def test_cancel_after_the_time_has_passed_is_rejected(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    message_id = fake_highlevel.add_message(scheduled_at=clock.now() + timedelta(minutes=1))
    clock.advance(timedelta(minutes=2))

    with pytest.raises(ProviderError) as caught:
        await highlevel_client.cancel(message_id)

    assert caught.value.kind is ErrorKind.REJECTED
    assert fake_highlevel.status_of(message_id) == "delivered"


async def test_cancel_is_retried_after_a_5xx(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient
) -> None:
    message_id = fake_highlevel.add_message()
    fake_highlevel.server.faults.status(
        500, b'{"statusCode":500,"message":"Internal server error"}', method="DELETE", times=1
    )

    state = await highlevel_client.cancel(message_id)

    assert state.state is SendState.CANCELLED
    assert len(fake_highlevel.server.requests_to("DELETE")) == 2
    assert fake_highlevel.messages[message_id]["status"] == "cancelled"


async def test_a_retried_cancel_whose_first_answer_was_lost_reports_cancelled(
    fake_highlevel: FakeHighLevel,
) -> None:
    """The 1st DELETE cancels but answers too late; the 2nd says "Failed cancel"; the GET finds it gone."""
    message_id = fake_highlevel.add_message()
    fake_highlevel.server.faults.latency(0.5, method="DELETE", times=1)
    client = make_client(fake_highlevel, read_timeout=0.3, retry=RetryPolicy(attempts=3, backoff=0.4))
    try:
        state = await client.cancel(message_id)
    finally:
        await client.aclose()

    assert state.state is SendState.CANCELLED
    assert state.status == "deleted"  # found gone after our own retry
    assert len(fake_highlevel.server.requests_to("DELETE")) == 2
    assert len(fake_highlevel.server.requests_to("GET")) == 1
    assert fake_highlevel.messages[message_id]["status"] == "cancelled"


# ------------------------------------------------------------------ headers, auth, spec


async def test_a_request_without_the_version_header_is_refused(fake_highlevel: FakeHighLevel) -> None:
    message_id = fake_highlevel.add_message()
    async with httpx.AsyncClient(base_url=fake_highlevel.url) as raw:
        missing = await raw.get(f"/conversations/messages/{message_id}", headers=raw_headers(fake_highlevel))
        wrong = await raw.get(
            f"/conversations/messages/{message_id}", headers=raw_headers(fake_highlevel, Version="v2")
        )
        right = await raw.get(
            f"/conversations/messages/{message_id}", headers=raw_headers(fake_highlevel, Version="2021-04-15")
        )
        v3 = await raw.get(f"/conversations/messages/{message_id}", headers=raw_headers(fake_highlevel, Version="v3"))

    assert missing.status_code == 400
    assert missing.json()["statusCode"] == 400
    assert wrong.status_code == 400
    assert right.status_code == 200
    # v3 is the v3 spec's value (same paths), what the official SDK sends: a listed deviation
    assert v3.status_code == 200
    assert fake_highlevel.tolerated == ["Version: v3 accepted where the v1 spec lists only 2021-04-15"]
    assert len(fake_highlevel.spec_violations) == 2


async def test_a_bad_token_is_auth(fake_highlevel: FakeHighLevel, clock: FrozenClock) -> None:
    client = make_client(fake_highlevel, token="pit-wrong")
    try:
        for call in (
            client.ping(),
            client.status(fake_highlevel.add_message()),
            client.cancel(fake_highlevel.add_message()),
            client.schedule(request(clock, CONTACT_A)),
        ):
            with pytest.raises(ProviderError) as caught:
                await call
            assert caught.value.kind is ErrorKind.AUTH
            assert caught.value.http_status == 401
            assert caught.value.message == "Invalid token: access token is invalid"
    finally:
        await client.aclose()


async def test_schedule_bodies_pass_the_openapi_spec(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    assert fake_highlevel.validating, "shared/specs/highlevel/apps/conversations.json not found"
    outcome = await highlevel_client.schedule(request(clock, CONTACT_A, CONTACT_B))

    assert [m.state for m in outcome.scheduled] == [SendState.SCHEDULED, SendState.SCHEDULED]
    posts = fake_highlevel.server.requests_to("POST", "/conversations/messages")
    bodies = sorted((p.json() for p in posts), key=lambda b: b["contactId"])
    stamp = int((clock.now() + timedelta(minutes=60)).timestamp())
    assert bodies[1] == {
        "type": "SMS",
        "contactId": CONTACT_A,
        "message": "Reminder: dentist at 10",
        "scheduledTimestamp": stamp,
    }
    assert isinstance(bodies[0]["scheduledTimestamp"], int)
    assert all(p.headers["version"] == "2021-04-15" for p in posts)
    assert fake_highlevel.spec_violations == []
    for scheduled in outcome.scheduled:
        assert fake_highlevel.messages[scheduled.id]["status"] == "scheduled"
        assert scheduled.send_at == datetime.fromtimestamp(stamp, tz=UTC)


def test_the_unpatched_spec_would_reject_a_real_sms_body() -> None:
    """Why bot/sandbox/deviations.py excuses `required` (specs/README.md): subType and status are generator
    artefacts."""
    unpatched = load_spec(HL_SPEC, "https://services.leadconnectorhq.com")
    assert unpatched is not None, f"the HighLevel spec is vendored at {HL_SPEC}"
    body = b'{"type": "SMS", "contactId": "cT9kQ2mN4pR6sV8xZ1aB", "message": "hi", "scheduledTimestamp": 1}'
    problems = unpatched.violations(
        "POST", "/conversations/messages", "", {"authorization": "Bearer x", "version": "2021-04-15"}, body
    )
    assert any("subType" in p["message"] for p in problems)


async def test_a_bad_raw_request_is_caught_by_the_spec(fake_highlevel: FakeHighLevel) -> None:
    async with httpx.AsyncClient(base_url=fake_highlevel.url) as raw:
        response = await raw.post(
            "/conversations/messages",
            json={"type": "Carrier pigeon", "message": "hi", "scheduledTimestamp": "tomorrow"},
            headers=raw_headers(fake_highlevel, Version="2021-04-15"),
        )

    assert response.status_code == 422
    body = response.json()
    assert body["statusCode"] == 422 and body["error"] == "Unprocessable Entity"
    joined = " ".join(body["message"])
    assert "'contactId' is a required property" in joined
    assert "number" in joined
    assert len(fake_highlevel.spec_violations) == 1
    assert fake_highlevel.messages == {}


# ------------------------------------------------------------------ schedule


async def test_three_contacts_one_unknown(fake_highlevel: FakeHighLevel, clock: FrozenClock) -> None:
    fake_highlevel.contacts = {CONTACT_A, CONTACT_B}
    client = make_client(fake_highlevel)
    try:
        outcome = await client.schedule(request(clock, CONTACT_A, CONTACT_C, CONTACT_B))
    finally:
        await client.aclose()

    assert sorted(m.recipients[0] for m in outcome.scheduled) == sorted([CONTACT_A, CONTACT_B])
    assert [to for to, _ in outcome.failed] == [CONTACT_C]
    error = outcome.failed[0][1]
    assert error.kind is ErrorKind.NOT_FOUND
    assert error.message == "Contact not found"
    assert len(fake_highlevel.messages) == 2


async def test_when_every_contact_fails_the_first_error_is_raised(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    with pytest.raises(ProviderError) as caught:
        await highlevel_client.schedule(request(clock, CONTACT_A, minutes=-5))

    assert caught.value.kind is ErrorKind.REJECTED
    assert caught.value.message == "Scheduled time must be in the future"


async def test_a_schedule_post_hitting_a_5xx_is_not_retried(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    fake_highlevel.server.faults.status(503, b"", method="POST", times=1)

    outcome = await highlevel_client.schedule(request(clock, CONTACT_A))

    # It may have been taken: reported as unknown, never as "not scheduled", and not repeated.
    assert outcome.scheduled == [] and outcome.failed == []
    [(contact, error)] = outcome.unknown
    assert contact == CONTACT_A and error.kind is ErrorKind.UNAVAILABLE
    assert len(fake_highlevel.server.requests_to("POST")) == 1


async def test_a_schedule_post_that_times_out_is_not_retried(
    fake_highlevel: FakeHighLevel, clock: FrozenClock
) -> None:
    fake_highlevel.server.faults.latency(0.6, method="POST")
    client = make_client(fake_highlevel, read_timeout=0.3)
    try:
        outcome = await client.schedule(request(clock, CONTACT_A))
    finally:
        await client.aclose()

    [(_, error)] = outcome.unknown
    assert error.kind is ErrorKind.TIMEOUT and error.outcome_unknown and outcome.failed == []
    deadline = time.monotonic() + 3  # let the late request finish at the fake
    while not fake_highlevel.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_highlevel.server.requests_to("POST")) == 1
    assert len(fake_highlevel.messages) == 1


async def test_a_429_is_retried_after_retry_after(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    fake_highlevel.server.faults.rate_limit(
        retry_after=0.3, method="POST", times=1, body=b'{"statusCode":429,"message":"Too many requests"}'
    )

    outcome = await highlevel_client.schedule(request(clock, CONTACT_A))

    posts = fake_highlevel.server.requests_to("POST")
    assert len(posts) == 2
    assert posts[1].at - posts[0].at >= 0.28
    assert len(outcome.scheduled) == 1


async def test_the_burst_limit_and_its_headers(clock: FrozenClock) -> None:
    with FakeHighLevel(now=clock.now, rate_limit=(2, 0.5)) as fake:
        message_id = fake.add_message()
        async with httpx.AsyncClient(
            base_url=fake.url, headers=raw_headers(fake, Version="2021-04-15")
        ) as raw:
            answers = [await raw.get(f"/conversations/messages/{message_id}") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[0].headers["x-ratelimit-max"] == "2"
        assert answers[0].headers["x-ratelimit-remaining"] == "1"
        assert answers[0].headers["x-ratelimit-interval-milliseconds"] == "500"
        assert answers[2].json()["statusCode"] == 429

        client = make_client(fake)
        try:  # no Retry-After from HighLevel: the client waits one window (0.5 s) and tries again
            state = await client.status(message_id)
        finally:
            await client.aclose()
        assert state.state is SendState.SCHEDULED


def test_default_burst_limit_is_highlevels() -> None:
    fake = FakeHighLevel()
    assert fake._limiter is not None
    assert (fake._limiter.limit, fake._limiter.seconds) == (100, 10.0)


# ------------------------------------------------------------------ faults and odd answers


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"id": "ve9EPM428h8vShlRW1KT", "status": "sched',
        b'"x"',
        b'{"id": 5, "status": "scheduled"}',
        b'{"id": "ve9EPM428h8vShlRW1KT", "status": 3}',
    ],
)
async def test_garbage_answers_to_status(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, body: bytes
) -> None:
    fake_highlevel.server.faults.garbage(body, status=200)

    with pytest.raises(ProviderError) as caught:
        await highlevel_client.status("ve9EPM428h8vShlRW1KT")

    assert caught.value.kind is ErrorKind.GARBAGE


@pytest.mark.parametrize("body", [b'{"status": "ok"}', b"[]", b"<html></html>"])
async def test_garbage_answers_to_cancel(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, body: bytes
) -> None:
    fake_highlevel.server.faults.garbage(body, status=200, method="DELETE")

    with pytest.raises(ProviderError) as caught:
        await highlevel_client.cancel(fake_highlevel.add_message())

    assert caught.value.kind is ErrorKind.GARBAGE


async def test_a_garbage_answer_to_a_schedule_post_is_a_failure_of_unknown_outcome(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    fake_highlevel.server.faults.garbage(b'{"conversationId": "x"}', status=200, method="POST")

    outcome = await highlevel_client.schedule(request(clock, CONTACT_A))

    [(_, error)] = outcome.unknown
    assert error.kind is ErrorKind.GARBAGE and error.outcome_unknown


async def test_a_read_timeout(fake_highlevel: FakeHighLevel) -> None:
    message_id = fake_highlevel.add_message()
    fake_highlevel.server.faults.latency(0.6, method="GET")
    client = make_client(fake_highlevel, read_timeout=0.3, retry=RetryPolicy(attempts=2, backoff=0.01))
    try:
        with pytest.raises(ProviderError) as caught:
            await client.status(message_id)
    finally:
        await client.aclose()

    assert caught.value.kind is ErrorKind.TIMEOUT
    assert len(fake_highlevel.server.requests_to("GET")) == 2


async def test_emoji_and_korean_round_trip(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    text = "안녕하세요 👋 내일 10시 예약 확인 — café ✅"
    outcome = await highlevel_client.schedule(request(clock, CONTACT_A, text=text))
    message_id = outcome.scheduled[0].id

    state = await highlevel_client.status(message_id)

    assert state.text == text
    assert fake_highlevel.messages[message_id]["body"] == text
    assert fake_highlevel.spec_violations == []


async def test_ping_needs_no_scope_that_sending_does_not(clock: FrozenClock) -> None:
    """A token with only the scope sending needs passes the health check; a bad token does not."""
    fake = FakeHighLevel(now=clock.now, scopes={"conversations/message.write"}).start()
    client = make_client(fake)
    wrong = make_client(fake, token="pit-not-the-right-token")
    try:
        await client.ping()
        await client.schedule(request(clock, CONTACT_A))  # and it can send with that scope
        with pytest.raises(ProviderError) as caught:
            await wrong.ping()
    finally:
        await client.aclose()
        await wrong.aclose()
        fake.stop()

    assert caught.value.kind is ErrorKind.AUTH
    assert fake.spec_violations == []
    assert [m for m in fake.messages.values() if m["status"] == "cancelled"] == []  # the ping changed nothing


async def test_a_scheduled_email_is_cancelled_on_its_own_path(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient, clock: FrozenClock
) -> None:
    message_id = fake_highlevel.add_message(scheduled_at=clock.now() + timedelta(hours=2))
    fake_highlevel.messages[message_id]["messageType"] = "TYPE_EMAIL"

    after = await highlevel_client.cancel(message_id)

    assert after.state is SendState.CANCELLED
    assert fake_highlevel.messages[message_id]["status"] == "cancelled"
    assert len(fake_highlevel.server.requests_to("DELETE", f"/messages/email/{message_id}/schedule")) == 1
    assert fake_highlevel.spec_violations == []


async def test_once_the_daily_quota_is_spent_the_bot_says_so_at_once(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient
) -> None:
    fake_highlevel.daily_remaining = 1
    message_id = fake_highlevel.add_message()
    await highlevel_client.status(message_id)  # the last request of the day: its answer says 0 remain

    with pytest.raises(ProviderError) as caught:
        await highlevel_client.status(message_id)

    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert "daily request quota" in caught.value.message and "200000" in caught.value.message
    assert len(fake_highlevel.server.requests) == 1  # not asked again, not waited for


async def test_a_429_with_the_daily_quota_spent_is_not_retried(
    fake_highlevel: FakeHighLevel, highlevel_client: HighLevelClient
) -> None:
    fake_highlevel.daily_remaining = 0  # spent by someone else sharing the app's quota
    with pytest.raises(ProviderError) as caught:
        await highlevel_client.status(fake_highlevel.add_message())

    assert caught.value.kind is ErrorKind.RATE_LIMITED and "daily request quota" in caught.value.message
    assert len(fake_highlevel.server.requests) == 1


async def test_send_and_delete_are_unsupported(highlevel_client: HighLevelClient) -> None:
    for call in (highlevel_client.send("x"), highlevel_client.delete("x")):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.kind is ErrorKind.UNSUPPORTED

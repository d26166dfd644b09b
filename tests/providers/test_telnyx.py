"""TelnyxClient against FakeTelnyx over real HTTP: states, cancel rules, retries, spec checks, faults."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from bot.domain.clock import FrozenClock
from bot.providers.base import ErrorKind, ProviderError, ScheduleRequest, SendState
from bot.providers.http import RetryPolicy, parse_retry_after
from bot.providers.telnyx import TelnyxClient
from bot.sandbox.telnyx import FakeTelnyx, load_spec

SENDER = "+18445550001"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_wait=5.0)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def fake_telnyx(clock: FrozenClock) -> Iterator[FakeTelnyx]:
    fake = FakeTelnyx(now=clock.now).start()
    try:
        yield fake
    finally:
        fake.stop()


def make_client(fake: FakeTelnyx, **overrides: Any) -> TelnyxClient:
    options: dict[str, Any] = {
        "base_url": fake.base_url,
        "sender": SENDER,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        "retry": FAST_RETRY,
    }
    options.update(overrides)
    api_key = options.pop("api_key", fake.api_key)
    return TelnyxClient(api_key, **options)


@pytest.fixture
async def telnyx_client(fake_telnyx: FakeTelnyx) -> AsyncIterator[TelnyxClient]:
    client = make_client(fake_telnyx)
    try:
        yield client
    finally:
        await client.aclose()


def request(
    clock: FrozenClock, *to: str, text: str = "Reminder: dentist at 10", minutes: int = 60
) -> ScheduleRequest:
    return ScheduleRequest(to=to, text=text, send_at=clock.now() + timedelta(minutes=minutes))


# ------------------------------------------------------------------ status


async def test_status_of_a_scheduled_message(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    send_at = clock.now() + timedelta(hours=2)
    message_id = fake_telnyx.add_message(send_at=send_at, to="+18665550123", text="hello")

    state = await telnyx_client.status(message_id)

    assert state.state is SendState.SCHEDULED
    assert state.status == "scheduled"
    assert state.id == message_id
    # The payload lists no send_at (spec and SDK): the GET does not tell it, and the bot does not invent it.
    assert state.send_at is None
    assert fake_telnyx.send_at_of(message_id) == send_at
    assert state.recipients == ("+18665550123",)
    assert state.recipient_count == 1
    assert state.text == "hello"
    assert fake_telnyx.spec_violations == []


async def test_a_scheduled_message_is_delivered_once_send_at_passes(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    message_id = fake_telnyx.add_message(send_at=clock.now() + timedelta(minutes=10))
    clock.advance(timedelta(minutes=11))

    state = await telnyx_client.status(message_id)

    assert state.state is SendState.SENT
    assert state.status == "delivered"


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("queued", SendState.SENDING),
        ("sending", SendState.SENDING),
        ("sent", SendState.SENT),
        ("delivery_unconfirmed", SendState.SENT),
        ("cancelled", SendState.CANCELLED),
        ("expired", SendState.FAILED),
        ("sending_failed", SendState.FAILED),
        ("delivery_failed", SendState.FAILED),
    ],
)
async def test_status_words_map_to_states(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, word: str, expected: SendState
) -> None:
    message_id = fake_telnyx.add_message(status=word)
    fake_telnyx.messages[message_id]["to"][0]["status"] = word  # queued would otherwise move on

    state = await telnyx_client.status(message_id)

    assert state.state is expected
    assert state.status == word


async def test_status_of_an_unknown_id_is_not_found(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient
) -> None:
    with pytest.raises(ProviderError) as caught:
        await telnyx_client.status("6f1c3a52-2f0e-4f56-9a7b-0d8c1e2f3a4b")

    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert caught.value.code == "10005"
    assert caught.value.message.startswith("Resource not found")
    assert fake_telnyx.spec_violations == []


async def test_a_non_uuid_id_is_invalid(fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await telnyx_client.status("not-a-uuid")

    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert caught.value.code == "10006"
    assert caught.value.http_status == 400
    assert "Invalid ID" in caught.value.message
    assert len(fake_telnyx.spec_violations) == 1  # the spec says format: uuid


# ------------------------------------------------------------------ cancel


async def test_cancel_a_scheduled_message(fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient) -> None:
    message_id = fake_telnyx.add_message(to="+18665550124")

    state = await telnyx_client.cancel(message_id)

    assert state.state is SendState.CANCELLED
    assert state.status == "cancelled"
    assert state.recipients == ("+18665550124",)
    assert fake_telnyx.status_of(message_id) == "cancelled"
    assert len(fake_telnyx.server.requests_to("DELETE")) == 1
    assert fake_telnyx.spec_violations == []


async def test_cancel_within_a_minute_of_send_at_is_refused_by_telnyx(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    message_id = fake_telnyx.add_message(send_at=clock.now() + timedelta(seconds=50))

    with pytest.raises(ProviderError) as caught:
        await telnyx_client.cancel(message_id)

    assert caught.value.kind is ErrorKind.REJECTED
    assert caught.value.http_status == 403
    assert "cannot be cancelled" in caught.value.message
    assert fake_telnyx.status_of(message_id) == "scheduled"
    assert len(fake_telnyx.server.requests_to("DELETE")) == 1  # a refusal is not retried


async def test_cancel_of_a_delivered_message_is_refused(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    message_id = fake_telnyx.add_message(send_at=clock.now() + timedelta(minutes=6))
    clock.advance(timedelta(minutes=7))

    with pytest.raises(ProviderError) as caught:
        await telnyx_client.cancel(message_id)

    assert caught.value.kind is ErrorKind.REJECTED
    assert fake_telnyx.status_of(message_id) == "delivered"


async def test_cancel_of_an_unknown_id_reads_the_bare_error(telnyx_client: TelnyxClient) -> None:
    with pytest.raises(ProviderError) as caught:
        await telnyx_client.cancel("6f1c3a52-2f0e-4f56-9a7b-0d8c1e2f3a4b")

    assert caught.value.kind is ErrorKind.NOT_FOUND
    assert caught.value.code == "10005"
    assert caught.value.message == "Resource not found: The requested resource or URL could not be found."


async def test_cancel_of_an_already_cancelled_message_returns_its_state(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient
) -> None:
    message_id = fake_telnyx.add_message(status="cancelled")

    state = await telnyx_client.cancel(message_id)

    assert state.state is SendState.CANCELLED


async def test_cancel_is_retried_after_a_5xx(fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient) -> None:
    message_id = fake_telnyx.add_message()
    fake_telnyx.server.faults.status(
        503, b'{"errors":[{"code":"10007","title":"Unexpected error"}]}', method="DELETE", times=1
    )

    state = await telnyx_client.cancel(message_id)

    assert state.state is SendState.CANCELLED
    assert len(fake_telnyx.server.requests_to("DELETE")) == 2
    assert fake_telnyx.status_of(message_id) == "cancelled"


async def test_a_retried_cancel_whose_first_answer_was_lost_reports_cancelled(
    fake_telnyx: FakeTelnyx,
) -> None:
    """The 1st DELETE cancels but answers too late; the 2nd is refused; a GET shows it is cancelled."""
    message_id = fake_telnyx.add_message()
    fake_telnyx.server.faults.latency(0.5, method="DELETE", times=1)
    client = make_client(fake_telnyx, read_timeout=0.3, retry=RetryPolicy(attempts=3, backoff=0.4))
    try:
        state = await client.cancel(message_id)
    finally:
        await client.aclose()

    assert state.state is SendState.CANCELLED
    assert len(fake_telnyx.server.requests_to("DELETE")) == 2
    assert len(fake_telnyx.server.requests_to("GET")) == 1


# ------------------------------------------------------------------ schedule


async def test_schedule_bodies_pass_the_openapi_spec(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    assert fake_telnyx.validating, "shared/specs/telnyx-messaging.yml not found"
    outcome = await telnyx_client.schedule(request(clock, "+18665550001", "+18665550002"))

    assert [m.state for m in outcome.scheduled] == [SendState.SCHEDULED, SendState.SCHEDULED]
    assert outcome.failed == []
    posts = fake_telnyx.server.requests_to("POST", "/v2/messages/schedule")
    assert len(posts) == 2
    bodies = sorted((p.json() for p in posts), key=lambda b: b["to"])
    assert bodies[0] == {
        "to": "+18665550001",
        "from": SENDER,
        "text": "Reminder: dentist at 10",
        "send_at": (clock.now() + timedelta(minutes=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert all(p.headers["authorization"] == f"Bearer {fake_telnyx.api_key}" for p in posts)
    assert fake_telnyx.spec_violations == []
    assert {m.id for m in outcome.scheduled} <= set(fake_telnyx.messages)


async def test_schedule_with_a_messaging_profile_only(fake_telnyx: FakeTelnyx, clock: FrozenClock) -> None:
    client = make_client(
        fake_telnyx, sender=None, messaging_profile_id="abc85f64-5717-4562-b3fc-2c9600000000"
    )
    try:
        outcome = await client.schedule(request(clock, "+18665550001"))
    finally:
        await client.aclose()

    body = fake_telnyx.server.requests_to("POST")[0].json()
    assert "from" not in body
    assert body["messaging_profile_id"] == "abc85f64-5717-4562-b3fc-2c9600000000"
    assert outcome.scheduled[0].state is SendState.SCHEDULED
    assert fake_telnyx.spec_violations == []


async def test_schedule_without_any_sender_is_refused_before_calling(
    fake_telnyx: FakeTelnyx, clock: FrozenClock
) -> None:
    client = make_client(fake_telnyx, sender=None)
    try:
        with pytest.raises(ProviderError) as caught:
            await client.schedule(request(clock, "+18665550001"))
    finally:
        await client.aclose()

    assert caught.value.kind is ErrorKind.REJECTED
    assert caught.value.code == "NoSender"
    assert "TELNYX_FROM" in caught.value.message and "TELNYX_MESSAGING_PROFILE_ID" in caught.value.message
    assert fake_telnyx.server.requests == []


async def test_a_bad_raw_request_is_caught_by_the_spec(fake_telnyx: FakeTelnyx) -> None:
    async with httpx.AsyncClient(base_url=fake_telnyx.base_url) as raw:
        response = await raw.post(
            "/messages/schedule",
            json={"text": 5, "send_at": "tomorrow", "from": SENDER},
            headers={"Authorization": f"Bearer {fake_telnyx.api_key}"},
        )

    assert response.status_code == 422
    details = " ".join(e["detail"] for e in response.json()["errors"])
    assert "'to' is a required property" in details
    assert "date-time" in details
    assert len(fake_telnyx.spec_violations) == 1
    assert fake_telnyx.spec_violations[0]["path"] == "/v2/messages/schedule"
    assert fake_telnyx.messages == {}


async def test_send_at_outside_the_window_is_refused_by_telnyx(
    telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    for minutes in (2, 6 * 24 * 60):
        with pytest.raises(ProviderError) as caught:
            await telnyx_client.schedule(request(clock, "+18665550001", minutes=minutes))
        assert caught.value.kind is ErrorKind.REJECTED
        assert caught.value.http_status == 400
        assert "5 minutes" in caught.value.message


async def test_three_recipients_one_bad_number(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    outcome = await telnyx_client.schedule(request(clock, "+18665550001", "12345", "+821012345678"))

    assert sorted(m.recipients[0] for m in outcome.scheduled) == ["+18665550001", "+821012345678"]
    assert len(outcome.failed) == 1
    recipient, error = outcome.failed[0]
    assert recipient == "12345"
    assert error.kind is ErrorKind.REJECTED
    assert error.code == "40310"
    assert len(fake_telnyx.messages) == 2


async def test_when_every_recipient_fails_the_first_error_is_raised(
    telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    with pytest.raises(ProviderError) as caught:
        await telnyx_client.schedule(request(clock, "nope", "+1"))

    assert caught.value.code == "40310"


async def test_a_schedule_post_without_a_key_hitting_a_5xx_is_not_retried(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    fake_telnyx.server.faults.status(502, b"", method="POST", times=1)

    outcome = await telnyx_client.schedule(request(clock, "+18665550001"))

    [(number, error)] = outcome.unknown
    assert number == "+18665550001" and error.kind is ErrorKind.UNAVAILABLE and error.outcome_unknown
    assert outcome.failed == [] and outcome.scheduled == []
    assert len(fake_telnyx.server.requests_to("POST")) == 1


async def test_a_schedule_post_without_a_key_that_times_out_is_not_retried(
    fake_telnyx: FakeTelnyx, clock: FrozenClock
) -> None:
    fake_telnyx.server.faults.latency(0.6, method="POST")
    client = make_client(fake_telnyx, read_timeout=0.3)
    try:
        outcome = await client.schedule(request(clock, "+18665550001"))
    finally:
        await client.aclose()

    [(_, error)] = outcome.unknown
    assert error.kind is ErrorKind.TIMEOUT
    deadline = time.monotonic() + 3  # let the late request finish at the fake
    while not fake_telnyx.messages and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fake_telnyx.server.requests_to("POST")) == 1
    assert len(fake_telnyx.messages) == 1  # it did happen: the caller must look before trying again


async def test_a_lost_answer_is_retried_with_the_same_idempotency_key_and_schedules_once(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    fake_telnyx.server.faults.lose_answer(method="POST", times=1)  # Telnyx schedules it; the answer is lost
    keyed = replace(request(clock, "+18665550001", "+18665550002"), key="intent0001")

    outcome = await telnyx_client.schedule(keyed)

    assert len(outcome.scheduled) == 2 and outcome.unknown == [] and outcome.failed == []
    assert len(fake_telnyx.messages) == 2  # the repeat was answered from the first, not scheduled again
    posts = fake_telnyx.server.requests_to("POST")
    assert len(posts) == 3
    keys = [p.headers["idempotency-key"] for p in posts]
    assert len(set(keys)) == 2 and all(re.fullmatch(r"[A-Za-z0-9_:-]{1,255}", k) for k in keys)
    assert all("18665550001" not in k for k in keys)  # no phone number in the key
    assert {s.send_at for s in outcome.scheduled} == {keyed.send_at}  # the time asked for: the payload has none
    assert fake_telnyx.spec_violations == []


async def test_an_unknown_schedule_asked_again_with_its_key_is_answered_not_repeated(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    fake_telnyx.server.faults.lose_answer(method="POST")  # every attempt: the outcome stays unknown
    keyed = replace(request(clock, "+18665550001"), key="intent0002")

    first = await telnyx_client.schedule(keyed)
    assert first.scheduled == [] and [n for n, _ in first.unknown] == ["+18665550001"]
    assert len(fake_telnyx.messages) == 1  # three attempts, one message

    fake_telnyx.server.faults.clear()
    again = await telnyx_client.schedule(keyed)  # what reconciliation does

    [state] = again.scheduled
    assert list(fake_telnyx.messages) == [state.id]

    # another request under the same key is refused while the record lives
    changed = replace(keyed, text="something else")
    with pytest.raises(ProviderError) as caught:
        await telnyx_client.schedule(changed)
    assert caught.value.http_status == 422 and len(fake_telnyx.messages) == 1


async def test_a_429_is_retried_after_retry_after(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    fake_telnyx.server.faults.rate_limit(retry_after=0.3, method="POST", times=1)

    outcome = await telnyx_client.schedule(request(clock, "+18665550001"))

    posts = fake_telnyx.server.requests_to("POST")
    assert len(posts) == 2
    assert posts[1].at - posts[0].at >= 0.28
    assert outcome.scheduled[0].state is SendState.SCHEDULED


async def test_the_fakes_own_rate_limit(clock: FrozenClock) -> None:
    with FakeTelnyx(now=clock.now, rate_limit=(1, 1.0)) as fake:
        message_id = fake.add_message()
        async with httpx.AsyncClient(
            base_url=fake.base_url, headers={"Authorization": f"Bearer {fake.api_key}"}
        ) as raw:
            first = await raw.get(f"/messages/{message_id}")
            second = await raw.get(f"/messages/{message_id}")
        assert first.status_code == 200
        assert first.headers["x-ratelimit-limit"] == "1"
        assert first.headers["x-ratelimit-remaining"] == "0"
        assert "x-ratelimit-reset" in first.headers
        assert second.status_code == 429
        assert second.json()["errors"][0]["code"] == "10011"

        client = make_client(fake)
        try:
            state = await client.status(message_id)  # 429 → waits x-ratelimit-reset → succeeds
        finally:
            await client.aclose()
        assert state.state is SendState.SCHEDULED


async def test_at_most_ten_schedule_posts_in_flight(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    fake_telnyx.server.faults.latency(0.2, method="POST")
    numbers = [f"+1866555{n:04d}" for n in range(25)]

    started = time.monotonic()
    outcome = await telnyx_client.schedule(request(clock, *numbers))
    elapsed = time.monotonic() - started

    assert len(outcome.scheduled) == 25
    assert elapsed >= 0.55  # three waves of at most ten, not one wave of 25


# ------------------------------------------------------------------ faults and odd answers


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", {"content-type": "text/html"}),
        (b'{"data": {"id": "6f1c3a52-2f0e-4f56', {"content-type": "application/json"}),
        (b'{"data": "x"}', {"content-type": "application/json"}),
        (b'{"data": {"id": 5, "to": []}}', {"content-type": "application/json"}),
        (
            b'{"data": {"id": "6f1c3a52-2f0e-4f56-9a7b-0d8c1e2f3a4b", "to": "x"}}',
            {"content-type": "application/json"},
        ),
        (b"[1, 2]", {"content-type": "application/json"}),
    ],
)
async def test_garbage_answers(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, body: bytes, headers: dict[str, str]
) -> None:
    fake_telnyx.server.faults.garbage(body, status=200, headers=headers)

    with pytest.raises(ProviderError) as caught:
        await telnyx_client.status("6f1c3a52-2f0e-4f56-9a7b-0d8c1e2f3a4b")

    assert caught.value.kind is ErrorKind.GARBAGE


async def test_an_html_error_page_is_garbage(fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient) -> None:
    fake_telnyx.server.faults.garbage(b"<html>Forbidden</html>", status=400)

    with pytest.raises(ProviderError) as caught:
        await telnyx_client.cancel("6f1c3a52-2f0e-4f56-9a7b-0d8c1e2f3a4b")

    assert caught.value.kind is ErrorKind.GARBAGE


async def test_a_read_timeout(fake_telnyx: FakeTelnyx) -> None:
    message_id = fake_telnyx.add_message()
    fake_telnyx.server.faults.latency(0.6, method="GET")
    client = make_client(fake_telnyx, read_timeout=0.3, retry=RetryPolicy(attempts=2, backoff=0.01))
    try:
        with pytest.raises(ProviderError) as caught:
            await client.status(message_id)
    finally:
        await client.aclose()

    assert caught.value.kind is ErrorKind.TIMEOUT
    assert len(fake_telnyx.server.requests_to("GET")) == 2  # a read is retried


async def test_a_dropped_connection_is_unavailable(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient
) -> None:
    message_id = fake_telnyx.add_message()
    fake_telnyx.server.faults.drop(method="GET")

    with pytest.raises(ProviderError) as caught:
        await telnyx_client.status(message_id)

    assert caught.value.kind is ErrorKind.UNAVAILABLE


async def test_a_bad_key_is_auth(fake_telnyx: FakeTelnyx, clock: FrozenClock) -> None:
    client = make_client(fake_telnyx, api_key="KEYwrong")
    try:
        for call in (
            client.ping(),
            client.status(fake_telnyx.add_message()),
            client.schedule(request(clock, "+18665550001")),
        ):
            with pytest.raises(ProviderError) as caught:
                await call
            assert caught.value.kind is ErrorKind.AUTH
            assert caught.value.code == "10009"
            assert caught.value.message.startswith("Authentication failed")
    finally:
        await client.aclose()


async def test_ping(fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient) -> None:
    await telnyx_client.ping()

    assert fake_telnyx.server.requests_to("GET")[0].headers["authorization"].startswith("Bearer ")


async def test_emoji_and_korean_round_trip(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    text = "안녕하세요 👋 내일 10시 예약 확인 — café ✅"
    outcome = await telnyx_client.schedule(request(clock, "+821012345678", text=text))
    message_id = outcome.scheduled[0].id

    state = await telnyx_client.status(message_id)

    assert outcome.scheduled[0].text == text
    assert state.text == text
    assert fake_telnyx.messages[message_id]["text"] == text
    assert fake_telnyx.messages[message_id]["encoding"] == "UCS-2"
    assert fake_telnyx.spec_violations == []


async def test_send_and_delete_are_unsupported(telnyx_client: TelnyxClient) -> None:
    for call in (telnyx_client.send("x"), telnyx_client.delete("x")):
        with pytest.raises(ProviderError) as caught:
            await call
        assert caught.value.kind is ErrorKind.UNSUPPORTED
        assert caught.value.message.startswith("Telnyx has no message groups: ")


async def test_without_the_specs_the_fake_still_works_but_says_it_did_not_validate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, clock: FrozenClock
) -> None:
    monkeypatch.setenv("SMSOPS_SPECS_DIR", str(tmp_path / "missing"))
    load_spec.cache_clear()
    try:
        with FakeTelnyx(now=clock.now) as fake:
            client = make_client(fake)
            try:
                outcome = await client.schedule(request(clock, "+18665550001"))
            finally:
                await client.aclose()
            assert not fake.validating
            assert fake.unvalidated == 1
            assert fake.spec_violations == []
            assert outcome.scheduled[0].state is SendState.SCHEDULED
    finally:
        monkeypatch.undo()
        load_spec.cache_clear()


def test_retry_after_as_an_http_date_is_honoured() -> None:
    now = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC).timestamp()
    dated = httpx.Response(429, headers={"Retry-After": "Mon, 04 May 2026 12:00:45 GMT"})
    past = httpx.Response(429, headers={"Retry-After": "Mon, 04 May 2026 11:00:00 GMT"})
    assert parse_retry_after(dated, now=now) == 45.0
    assert parse_retry_after(past, now=now) == 0.0
    assert parse_retry_after(httpx.Response(429, headers={"Retry-After": "soon"}), now=now) is None


async def test_a_retry_after_date_beyond_the_wait_limit_is_reported_not_retried(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(minutes=2), usegmt=True)
    fake_telnyx.server.faults.rate_limit(headers={"retry-after": later}, method="GET")

    with pytest.raises(ProviderError) as caught:
        await telnyx_client.status(fake_telnyx.add_message())

    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert caught.value.retry_after is not None and 100 < caught.value.retry_after <= 120
    assert len(fake_telnyx.server.requests_to("GET")) == 1


async def test_a_408_is_retried_for_a_read_but_not_for_an_unkeyed_schedule(
    fake_telnyx: FakeTelnyx, telnyx_client: TelnyxClient, clock: FrozenClock
) -> None:
    message_id = fake_telnyx.add_message()
    fake_telnyx.server.faults.status(408, b"", method="GET", times=1)
    state = await telnyx_client.status(message_id)
    assert state.id == message_id and len(fake_telnyx.server.requests_to("GET")) == 2

    fake_telnyx.server.faults.status(408, b"", method="POST", times=1)
    outcome = await telnyx_client.schedule(request(clock, "+18665550001"))
    [(_, error)] = outcome.unknown
    assert error.kind is ErrorKind.TIMEOUT and len(fake_telnyx.server.requests_to("POST")) == 1


def test_the_fakes_answers_are_checked_against_the_spec_too():
    """A fake that answered what the spec does not allow would let the bot pass against answers no real
    Telnyx gives: the answer is validated like the request, and only deviations.py may excuse it."""
    from datetime import UTC, datetime, timedelta

    import httpx

    from bot.sandbox.telnyx import FakeTelnyx

    with FakeTelnyx() as fake:
        message_id = fake.add_message(to="+15551230001", text="hi", send_at=datetime.now(UTC) + timedelta(hours=1))
        auth = {"Authorization": f"Bearer {fake.api_key}"}
        assert httpx.get(f"{fake.base_url}/messages/{message_id}", headers=auth).status_code == 200
        assert fake.spec_violations == []  # 'scheduled' is excused, with its source
        assert any("'scheduled'" in t or "scheduled" in t for t in fake.tolerated)
        fake.messages[message_id]["to"][0]["status"] = "banana"  # no Telnyx status, excused nowhere
        fake.messages[message_id]["parts"] = "one"
        httpx.get(f"{fake.base_url}/messages/{message_id}", headers=auth)
        [violation] = fake.spec_violations
        messages = [e["message"] for e in violation["errors"]]
        assert any("'banana' is not one of" in m for m in messages), messages
        assert all(m.startswith("response 200: ") for m in messages)

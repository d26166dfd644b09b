"""The official `twilio` package as a client of FakeTwilio, and as the yardstick for what the bot sends.

Each operation is done twice against the same fake: once by the SDK (the reference for what Twilio
accepts and answers) and once by the bot's TwilioClient, and the two requests are compared field by
field. The SDK must also parse every answer the fake gives (dates, errors), and its RequestValidator
must accept the fake's signed status callbacks, so that the fake cannot drift from Twilio's wire format
without these tests noticing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.providers.base import ScheduleRequest, SendState
from bot.providers.twilio import TwilioClient
from bot.sandbox.server import RecordedRequest
from bot.sandbox.twilio import FakeTwilio

TWILIO_API = "https://api.twilio.com"


class LocalHttpClient(TwilioHttpClient):
    """The SDK's own HTTP client, with Twilio's host swapped for the fake's: nothing else changes."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=5)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        assert url.startswith(TWILIO_API), url  # the SDK built Twilio's own URL
        return super().request(method, self.base_url + url[len(TWILIO_API):], *args, **kwargs)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as twilio:
        yield twilio


def sdk_client(fake: FakeTwilio, *, api_key: bool = False) -> Client:
    http = LocalHttpClient(fake.base_url)
    if api_key:
        return Client(fake.api_key, fake.api_secret, fake.account_sid, http_client=http)
    return Client(fake.account_sid, fake.auth_token, http_client=http)


def bot_client(fake: FakeTwilio) -> TwilioClient:
    return TwilioClient(fake.account_sid, auth_token=fake.auth_token,
                        messaging_service_sid=fake.messaging_service_sid, base_url=fake.base_url)


def form(recorded: RecordedRequest) -> dict[str, list[str]]:
    return parse_qs(recorded.body.decode("utf-8"), keep_blank_values=True)


def assert_same_request(sdk: RecordedRequest, bot: RecordedRequest, *, same_path: bool = True) -> None:
    assert bot.method == sdk.method
    if same_path:
        assert bot.path == sdk.path
    assert form(bot) == form(sdk)
    assert bot.headers["authorization"] == sdk.headers["authorization"]
    for header in ("content-type", "accept"):
        assert bot.headers.get(header, "").split(";")[0] == sdk.headers.get(header, "").split(";")[0], header


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_create_scheduled_the_sdk_and_the_bot_send_the_same_form(fake: FakeTwilio) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    text = "Doors open at 10 — 안녕하세요 🎉"

    created = sdk_client(fake).messages.create(
        to="+15558675310", body=text, messaging_service_sid=fake.messaging_service_sid,
        schedule_type="fixed", send_at=send_at)
    sdk_request = fake.server.requests[-1]

    async def bot_schedule() -> Any:
        client = bot_client(fake)
        try:
            return await client.schedule(ScheduleRequest(to=("+15558675310",), text=text, send_at=send_at))
        finally:
            await client.aclose()

    outcome = run(bot_schedule())
    bot_request = fake.server.requests[-1]

    assert_same_request(sdk_request, bot_request)
    assert form(bot_request)["SendAt"] == [send_at.strftime("%Y-%m-%dT%H:%M:%SZ")]
    # what the SDK parses out of the fake's answer is what the bot reads
    assert created.status == "scheduled" and created.sid.startswith("SM")
    assert isinstance(created.date_created, datetime)  # RFC 2822, as the SDK's deserialize expects
    assert created.messaging_service_sid == fake.messaging_service_sid
    [state] = outcome.scheduled
    assert (state.status, state.recipients, state.text) == (created.status, (created.to,), created.body)


def test_fetch_the_sdk_and_the_bot_read_the_same_message(fake: FakeTwilio) -> None:
    sid = fake.add_message(send_at=datetime.now(UTC) + timedelta(hours=1), to="+15558675311", body="hi")

    fetched = sdk_client(fake).messages(sid).fetch()
    sdk_request = fake.server.requests[-1]

    async def bot_status() -> Any:
        client = bot_client(fake)
        try:
            return await client.status(sid)
        finally:
            await client.aclose()

    state = run(bot_status())
    bot_request = fake.server.requests[-1]

    assert_same_request(sdk_request, bot_request)
    assert bot_request.method == "GET" and bot_request.body == b""
    assert (fetched.sid, fetched.status, fetched.to, fetched.body) == (state.id, state.status, "+15558675311", "hi")
    assert state.state is SendState.SCHEDULED


def test_cancel_the_sdk_and_the_bot_send_the_same_update(fake: FakeTwilio) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    by_sdk, by_bot = fake.add_message(send_at=later), fake.add_message(send_at=later)

    updated = sdk_client(fake).messages(by_sdk).update(status="canceled")
    sdk_request = fake.server.requests[-1]

    async def bot_cancel() -> Any:
        client = bot_client(fake)
        try:
            return await client.cancel(by_bot)
        finally:
            await client.aclose()

    state = run(bot_cancel())
    bot_request = fake.server.requests[-1]

    assert_same_request(sdk_request, bot_request, same_path=False)  # two messages, the same operation
    assert sdk_request.path.replace(by_sdk, "{sid}") == bot_request.path.replace(by_bot, "{sid}")
    assert form(bot_request) == {"Status": ["canceled"]}
    assert updated.status == "canceled" and state.status == "canceled"


def test_the_sdk_reads_the_fakes_errors_as_twilio_errors(fake: FakeTwilio) -> None:
    sid = fake.add_message(send_at=datetime.now(UTC) + timedelta(hours=1))
    client = sdk_client(fake)
    client.messages(sid).update(status="canceled")

    with pytest.raises(TwilioRestException) as again:
        client.messages(sid).update(status="canceled")
    assert (again.value.status, again.value.code) == (400, 30409)
    assert again.value.msg.endswith("This message cannot be canceled")

    with pytest.raises(TwilioRestException) as missing:
        client.messages("SM" + "0" * 32).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)

    with pytest.raises(TwilioRestException) as too_soon:
        client.messages.create(to="+15558675310", body="x", messaging_service_sid=fake.messaging_service_sid,
                               schedule_type="fixed", send_at=datetime.now(UTC) + timedelta(minutes=5))
    assert too_soon.value.code == 35114


def test_the_sdk_with_an_api_key_is_accepted_and_a_wrong_token_is_not(fake: FakeTwilio) -> None:
    sid = fake.add_message()
    assert sdk_client(fake, api_key=True).messages(sid).fetch().status == "scheduled"
    wrong = Client(fake.account_sid, "0" * 32, http_client=LocalHttpClient(fake.base_url))
    with pytest.raises(TwilioRestException) as refused:
        wrong.messages(sid).fetch()
    assert (refused.value.status, refused.value.code) == (401, 20003)


def test_the_fakes_status_callbacks_pass_the_sdks_request_validator(fake: FakeTwilio) -> None:
    sid = fake.add_message()
    url = "https://smsops.example.com/webhooks/twilio"
    params, headers = fake.status_callback(sid, "undelivered", url, error_code=30003)
    validator = RequestValidator(fake.auth_token)
    assert validator.validate(url, params, headers["X-Twilio-Signature"])
    assert not validator.validate(url, {**params, "MessageStatus": "delivered"}, headers["X-Twilio-Signature"])
    assert not RequestValidator("f" * 32).validate(url, params, headers["X-Twilio-Signature"])

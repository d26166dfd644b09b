"""The official Solapi Python SDK (PyPI `solapi`) as the client of our fake Solapi, and the bot's
requests compared with the SDK's, field by field, as both arrive at the fake.

The SDK is pointed at the fake by its `base_url` attribute (it has no constructor argument for it)
and talks synchronously over httpx, so these tests are plain functions; the bot's client runs in
its own event loop with `asyncio.run`.

What the SDK reaches (and so the fake is proved to accept and answer in shapes the SDK parses):
one-shot send and schedule (`send`, `POST /messages/v4/send-many/detail`), cancel a schedule
(`cancel_scheduled_message`), get a group, list groups (also filtered by groupId), a group's
messages, the message list (`get_messages`, `GET /messages/v4/list-old`) and the balance
(`GET /cash/v1/balance`).

What the SDK cannot reach: creating a group (`POST /messages/v4/groups`), adding messages to it
(`PUT …/messages`), scheduling a group (`POST …/schedule`), sending a group (`POST …/send`) and
deleting one (`DELETE /messages/v4/groups/{id}`). The bot uses those (it makes the group first so
that a lost answer can be settled by reading that group); for them the comparison is with the
SDK's nearest operation: its `Message` model for each message, its `send-many` body for the
scheduled date, its authenticator for the header.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from solapi import SolapiMessageService
from solapi.model import RequestMessage
from solapi.model.request.groups.get_groups import GetGroupsRequest
from solapi.model.request.messages.get_messages import GetMessagesRequest
from solapi.model.request.send_message_request import SendRequestConfig

from bot.providers.base import ScheduleRequest, SendState
from bot.providers.solapi import SolapiClient
from bot.sandbox.server import RecordedRequest
from bot.sandbox.solapi import FakeSolapi, parse_iso

SENDER = "029302266"
T = TypeVar("T")


@pytest.fixture
def fake() -> Iterator[FakeSolapi]:
    with FakeSolapi() as server:
        yield server


@pytest.fixture
def sdk(fake: FakeSolapi) -> SolapiMessageService:
    service = SolapiMessageService(fake.api_key, fake.api_secret)
    service.base_url = fake.url  # the SDK's only way to another host
    return service


def bot_call(fake: FakeSolapi, call: Callable[[SolapiClient], Awaitable[T]]) -> T:
    async def run() -> T:
        client = SolapiClient(fake.api_key, fake.api_secret, base_url=fake.url, sender=SENDER)
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(run())


def new_requests(fake: FakeSolapi, since: int) -> list[RecordedRequest]:
    return fake.requests[since:]


def auth_fields(request: RecordedRequest) -> tuple[str, dict[str, str]]:
    scheme, _, rest = request.headers["authorization"].partition(" ")
    fields = {}
    for piece in rest.split(","):
        key, _, value = piece.strip().partition("=")
        fields[key.lower()] = value
    return scheme, fields


def in_days(days: float) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


# -- the SDK against the fake -----------------------------------------------------------------


def test_the_sdk_schedules_reads_and_cancels_against_the_fake(fake: FakeSolapi, sdk: SolapiMessageService) -> None:
    send_at = in_days(1)
    answer = sdk.send(
        [RequestMessage(from_=SENDER, to="010-1111-2222", text="내일 회의"),
         RequestMessage(from_=SENDER, to="5551234567", country="1", text="meeting tomorrow")],
        SendRequestConfig(scheduled_date=send_at),
    )
    group_id = answer.group_info.group_id
    assert answer.group_info.status == "SCHEDULED" and answer.failed_message_list == []
    assert answer.group_info.count.registered_success == 2
    assert answer.group_info.scheduled_date == send_at

    group = sdk.get_group(group_id)
    assert (group.status, group.count.registered_success) == ("SCHEDULED", 2)
    listed = sdk.get_groups(GetGroupsRequest(group_id=group_id))
    assert list(listed.group_list) == [group_id]
    messages = sdk.get_group_messages(group_id).message_list
    assert sorted((m.country, m.to) for m in messages.values()) == [("1", "5551234567"), ("82", "01011112222")]
    one = next(iter(messages))
    assert list(sdk.get_messages(GetMessagesRequest(message_id=one)).message_list) == [one]

    cancelled = sdk.cancel_scheduled_message(group_id)
    assert cancelled.status == "FAILED" and fake.group(group_id)["status"] == "FAILED"
    assert sdk.get_balance().balance == fake.balance


def test_the_sdk_sends_at_once_and_hears_refused_registrations(fake: FakeSolapi, sdk: SolapiMessageService) -> None:
    answer = sdk.send([RequestMessage(from_=SENDER, to="01011112222", text="지금"),
                       RequestMessage(from_=SENDER, to="not-a-number", text="지금")])
    assert answer.group_info.status == "SENDING"
    [failed] = answer.failed_message_list
    assert (failed.to, failed.status_code) == ("notanumber", "1011")  # the SDK strips dashes


def test_an_sdk_error_is_solapis_code_and_korean_message(fake: FakeSolapi, sdk: SolapiMessageService) -> None:
    with pytest.raises(Exception) as caught:  # the SDK raises a bare Exception(code, message)
        sdk.cancel_scheduled_message(fake.add_group(status="PENDING"))
    assert caught.value.args == ("InvalidStatus", "'SCHEDULED' 상태의 그룹만 취소가 가능합니다.")
    wrong = SolapiMessageService(fake.api_key, "not-the-secret")
    wrong.base_url = fake.url
    with pytest.raises(Exception) as refused:
        wrong.get_balance()
    assert refused.value.args == ("SignatureDoesNotMatch", "생성한 Signature가 일치하지 않음")


# -- the bot's requests beside the SDK's --------------------------------------------------------


def test_the_auth_header_has_the_sdks_scheme_and_fields(fake: FakeSolapi, sdk: SolapiMessageService) -> None:
    group_id = fake.add_group(status="SCHEDULED")
    start = len(fake.requests)
    sdk.get_group(group_id)
    bot_call(fake, lambda client: client.status(group_id))
    sdk_request, bot_request = new_requests(fake, start)
    (sdk_scheme, sdk_fields), (bot_scheme, bot_fields) = auth_fields(sdk_request), auth_fields(bot_request)
    assert sdk_scheme == bot_scheme == "HMAC-SHA256"
    assert set(sdk_fields) == set(bot_fields) == {"apikey", "date", "salt", "signature"}
    assert len(sdk_fields["salt"]) == len(bot_fields["salt"]) == 32  # uuid1().hex / token_hex(16)
    assert len(sdk_fields["signature"]) == len(bot_fields["signature"]) == 64  # hex SHA-256
    # both dates are ISO 8601 with a zone (the SDK: local offset and microseconds; the bot: UTC, Z)
    assert abs(parse_iso(sdk_fields["date"]) - parse_iso(bot_fields["date"])) < timedelta(minutes=1)
    assert (sdk_request.method, sdk_request.path) == (bot_request.method, bot_request.path)


@pytest.mark.parametrize(("typed", "country", "national"), [
    ("+821011112222", "82", "01011112222"),
    ("+15551234567", "1", "5551234567"),
])
def test_each_message_the_bot_adds_is_what_the_sdks_message_model_sends(
    fake: FakeSolapi, sdk: SolapiMessageService, typed: str, country: str, national: str
) -> None:
    send_at = in_days(2)
    start = len(fake.requests)
    sdk.send(RequestMessage(from_=SENDER, to=national, country=country, text="안녕 hello"),
             SendRequestConfig(scheduled_date=send_at))
    outcome = bot_call(fake, lambda client: client.schedule(
        ScheduleRequest(to=(typed,), text="안녕 hello", send_at=send_at)))
    assert outcome.scheduled[0].state is SendState.SCHEDULED
    sdk_send, *bot_requests = new_requests(fake, start)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in bot_requests] == [
        ("POST", "groups"), ("PUT", "messages"), ("POST", "schedule")]
    create, add, schedule = bot_requests
    [sdk_message] = sdk_send.json()["messages"]
    [bot_message] = add.json()["messages"]
    # the same recipient, sender and text; `country` as the SDK sends it (the bot leaves out the
    # default "82"); the SDK's extra key autoTypeDetect is its default, which the API applies anyway
    assert set(bot_message) <= set(sdk_message) and set(sdk_message) - set(bot_message) <= {
        "country", "autoTypeDetect"}
    assert {k: sdk_message[k] for k in ("to", "from", "text")} == {k: bot_message[k] for k in ("to", "from", "text")}
    assert bot_message.get("country", "82") == sdk_message["country"] == country
    assert sdk_message["autoTypeDetect"] is True
    # the scheduled date: both ISO 8601 with a zone, the same instant
    sdk_date, bot_date = sdk_send.json()["scheduledDate"], schedule.json()["scheduledDate"]
    assert parse_iso(sdk_date) == parse_iso(bot_date) == send_at
    assert create.json() == {}  # no options: the SDK's one-shot send sets none that the bot needs
    # and the fake holds both groups alike
    groups = [g for g in fake.groups.values() if g["status"] == "SCHEDULED"]
    assert len(groups) == 2 and {g["scheduledDate"] for g in groups} == {schedule.json()["scheduledDate"]}
    assert all(g["countForCharge"]["sms"] == {country: 1} for g in groups)


def test_cancel_status_and_ping_use_the_sdks_method_path_and_query(
    fake: FakeSolapi, sdk: SolapiMessageService
) -> None:
    scheduled = [fake.add_group(status="SCHEDULED") for _ in range(2)]
    message_id = fake.group_message_ids[scheduled[0]][0]
    pairs: list[tuple[Callable[[], Any], Callable[[SolapiClient], Awaitable[Any]]]] = [
        (lambda: sdk.cancel_scheduled_message(scheduled[0]), lambda client: client.cancel(scheduled[1])),
        (lambda: sdk.get_messages(GetMessagesRequest(message_id=message_id)),
         lambda client: client.status(message_id)),
        (lambda: sdk.get_groups(GetGroupsRequest(limit=1)), lambda client: client.ping()),
    ]
    for sdk_call, bot_operation in pairs:
        start = len(fake.requests)
        sdk_call()
        bot_call(fake, bot_operation)
        sdk_request, bot_request, *_ = new_requests(fake, start)  # the bot may read the group after
        sdk_path = sdk_request.path.replace(scheduled[0], "{id}")
        bot_path = bot_request.path.replace(scheduled[1], "{id}")
        assert (sdk_request.method, sdk_path) == (bot_request.method, bot_path)
        sdk_query = dict(pair.split("=", 1) for pair in sdk_request.query.split("&") if pair)
        bot_query = dict(pair.split("=", 1) for pair in bot_request.query.split("&") if pair)
        # the bot's query is the SDK's without the SDK's defaults (limit=20, dateType=CREATED)
        assert bot_query.items() <= sdk_query.items(), (sdk_query, bot_query)
    assert [fake.group(g)["status"] for g in scheduled] == ["FAILED", "FAILED"]

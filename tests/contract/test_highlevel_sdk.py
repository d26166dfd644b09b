"""The official HighLevel SDK (PyPI `gohighlevel-api-client` 3.0.0, `highlevel.HighLevel`) as a client of our
fake, and the bot's requests compared with the SDK's for the same operations: schedule an SMS
(`send_a_new_message`), get a message (`get_message`), cancel a scheduled SMS (`cancel_scheduled_message`),
cancel a scheduled email (`cancel_scheduled_email_message`), and `ping` (a cancel of an id no message has).

Where the SDK cannot reach an operation as written:
- `get_message(options)` takes no id: its URL template `/conversations/messages/{id}` is never filled in
  (the v1 spec declares no `{id}` parameter, and the SDK is generated from it). It is reached here only by
  overriding the URL through `options={"url": ...}`, which the SDK's `config.update(options)` allows.
- `send_a_new_message` is typed with a pydantic `SendMessageBodyDto` that requires `subType` (an object) and
  `status` (the spec's generator artefact, bot/sandbox/deviations.py) and hands the body to httpx unchanged
  (a model instance is not JSON-serialisable there), so it is given the plain dict an SMS needs.
- The SDK cannot be pointed at another host by an argument: `BASE_URL` is a class constant; the tests set
  `http_client.base_url`, which every service shares.
- The bot schedules no emails; the SDK schedules the ones both cancel.

The one deliberate difference: the SDK forces `Version: v3` (the v3 spec's value), the bot sends
`2021-04-15` (the v1 spec's, which tests/specs holds); HighLevel documents both for the same paths, so the
fake accepts both (a deviation listed in bot/sandbox/deviations.py) and the bot keeps the vendored spec's.
The email cancel path declares no Version at all in the v1 spec; both send one, and the fake takes any.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from highlevel import HighLevel

from bot.providers.base import ScheduleRequest, SendState
from bot.providers.highlevel import PING_ID, HighLevelClient
from bot.sandbox import deviations
from bot.sandbox.highlevel import FakeHighLevel
from bot.sandbox.server import RecordedRequest

CONTACT = "cT9kQ2mN4pR6sV8xZ1aB"
V3 = "Version: v3 accepted where the v1 spec lists only 2021-04-15"


@pytest.fixture
def fake() -> Iterator[FakeHighLevel]:
    server = FakeHighLevel().start()
    try:
        yield server
    finally:
        server.stop()


def sdk_for(fake: FakeHighLevel) -> HighLevel:
    sdk = HighLevel(private_integration_token=fake.token)
    sdk.http_client.base_url = httpx.URL(fake.url)
    return sdk


def sms(stamp: int) -> dict[str, Any]:
    return {"type": "SMS", "contactId": CONTACT, "message": "hi", "scheduledTimestamp": stamp}


def email(stamp: int) -> dict[str, Any]:
    return {"type": "Email", "contactId": CONTACT, "html": "hi", "subject": "s", "scheduledTimestamp": stamp}


async def test_the_sdk_drives_every_operation_the_bot_uses(fake: FakeHighLevel) -> None:
    stamp = int(time.time()) + 3600
    sdk = sdk_for(fake)
    try:
        scheduled = await sdk.conversations.send_a_new_message(sms(stamp))  # type: ignore[arg-type]
        message_id = scheduled["messageId"]
        got = await sdk.conversations.get_message(options={"url": f"/conversations/messages/{message_id}"})
        assert got["id"] == message_id and got["status"] == "scheduled"
        assert await sdk.conversations.cancel_scheduled_message(message_id) == {
            "status": 200, "message": "Scheduled message cancelled successfully"}
        mail = await sdk.conversations.send_a_new_message(email(stamp))  # type: ignore[arg-type]
        cancelled = await sdk.conversations.cancel_scheduled_email_message(mail["emailMessageId"])
        assert cancelled["status"] == 200
        pinged = await sdk.conversations.cancel_scheduled_message(PING_ID)  # what the bot's ping sends
        assert pinged == {"status": 404, "message": "Failed cancel the scheduled message"}
    finally:
        await sdk.http_client.aclose()
    assert fake.spec_violations == []
    assert fake.messages[message_id]["status"] == "cancelled"
    assert fake.messages[mail["emailMessageId"]]["status"] == "cancelled"


async def test_the_bot_sends_what_the_sdk_sends(fake: FakeHighLevel) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    stamp = int(send_at.timestamp())
    sdk = sdk_for(fake)
    bot = HighLevelClient(fake.token, location_id=fake.location_id, base_url=fake.url)
    try:
        mark = len(fake.server.requests)
        theirs_sms = await sdk.conversations.send_a_new_message(sms(stamp))  # type: ignore[arg-type]
        outcome = await bot.schedule(ScheduleRequest(to=(CONTACT,), text="hi", send_at=send_at, key="hlcontract"))
        ours_id = outcome.scheduled[0].id
        await sdk.conversations.get_message(options={"url": f"/conversations/messages/{theirs_sms['messageId']}"})
        await bot.status(ours_id)
        await sdk.conversations.cancel_scheduled_message(theirs_sms["messageId"])
        assert (await bot.cancel(ours_id)).state is SendState.CANCELLED
        await sdk.conversations.cancel_scheduled_message(PING_ID)
        await bot.ping()
        pairs = _pairs(fake.server.requests[mark:])

        # A scheduled email: the bot tries the SMS path, reads the message, then takes the email path.
        theirs_mail = await sdk.conversations.send_a_new_message(email(stamp))  # type: ignore[arg-type]
        ours_mail = await sdk.conversations.send_a_new_message(email(stamp))  # type: ignore[arg-type]
        mark = len(fake.server.requests)
        await sdk.conversations.cancel_scheduled_email_message(theirs_mail["emailMessageId"])
        assert (await bot.cancel(ours_mail["emailMessageId"])).state is SendState.CANCELLED
        after = fake.server.requests[mark:]
        assert [(r.method, r.path.split("/")[3]) for r in after[1:]] == [
            ("DELETE", ours_mail["emailMessageId"]), ("GET", ours_mail["emailMessageId"]), ("DELETE", "email")]
        pairs.append((after[0], after[-1]))
    finally:
        await sdk.http_client.aclose()
        await bot.aclose()

    ids = {theirs_sms["messageId"], ours_id, theirs_mail["emailMessageId"], ours_mail["emailMessageId"]}
    assert [(theirs.method, _template(theirs.path, ids)) for theirs, _ in pairs] == [
        ("POST", "/conversations/messages"),
        ("GET", "/conversations/messages/{id}"),
        ("DELETE", "/conversations/messages/{id}/schedule"),
        ("DELETE", f"/conversations/messages/{PING_ID}/schedule"),
        ("DELETE", "/conversations/messages/email/{id}/schedule"),
    ]
    for theirs, ours in pairs:
        assert theirs.method == ours.method
        assert _template(theirs.path, ids) == _template(ours.path, ids)
        assert theirs.query == ours.query == ""
        assert theirs.headers["authorization"] == ours.headers["authorization"] == f"Bearer {fake.token}"
        assert (theirs.headers["version"], ours.headers["version"]) == ("v3", "2021-04-15")
    theirs_post, ours_post = pairs[0]
    assert theirs_post.headers["content-type"] == "application/json"
    assert ours_post.headers["content-type"].startswith("application/json")
    theirs_body, ours_body = theirs_post.json(), ours_post.json()
    assert theirs_body.keys() == ours_body.keys() == {"type", "contactId", "message", "scheduledTimestamp"}
    # UTC seconds as an integer, as SendMessageBodyDto says ("UTC Timestamp (in seconds)")
    assert type(ours_body["scheduledTimestamp"]) is int
    assert theirs_body["scheduledTimestamp"] == ours_body["scheduledTimestamp"] == stamp
    assert all(pair[1].body == b"" for pair in pairs[1:])
    assert fake.spec_violations == []
    assert V3 in fake.tolerated


async def test_a_deviation_not_listed_is_a_spec_violation(fake: FakeHighLevel,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The fakes excuse only what bot/sandbox/deviations.py lists: an unlisted departure in a request that
    also relies on listed ones is caught, and removing an entry makes what it excused a violation."""
    sdk = sdk_for(fake)
    try:
        # Listed: Version v3 and the missing subType/status. Not listed: a date string for the timestamp.
        body = {**sms(0), "scheduledTimestamp": "2030-01-01T10:00:00Z"}
        with pytest.raises(Exception) as caught:
            await sdk.conversations.send_a_new_message(body)  # type: ignore[arg-type]
        assert getattr(caught.value, "status_code", None) == 422
        [violation] = fake.spec_violations
        assert [e["pointer"] for e in violation["errors"]] == ["/scheduledTimestamp"]

        monkeypatch.setattr(deviations, "DEVIATIONS", tuple(d for d in deviations.DEVIATIONS if d.what != V3))
        with pytest.raises(Exception) as refused:
            await sdk.conversations.send_a_new_message(sms(int(time.time()) + 3600))  # type: ignore[arg-type]
        assert getattr(refused.value, "status_code", None) == 400
        assert "'v3' is not supported" in fake.spec_violations[-1]["errors"][0]["message"]
    finally:
        await sdk.http_client.aclose()
    assert not any(m["body"] == "hi" for m in fake.messages.values())


def _pairs(requests: list[RecordedRequest]) -> list[tuple[RecordedRequest, RecordedRequest]]:
    """(SDK's, bot's) per operation: the SDK's request first, then the bot's (one each, in order)."""
    return [(requests[i], requests[i + 1]) for i in range(0, len(requests), 2)]


def _template(path: str, ids: set[str]) -> str:
    for message_id in ids:
        path = path.replace(message_id, "{id}")
    return path

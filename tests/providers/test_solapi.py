"""SolapiClient against FakeSolapi over real HTTP: states, errors verbatim, auth, retries, faults."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.domain.clock import FrozenClock
from bot.domain.policy import schedule_window
from bot.providers.base import ErrorKind, Provider, ProviderError, ProviderName, ScheduleRequest, SendState
from bot.providers.http import RetryPolicy
from bot.providers.solapi import SolapiClient, solapi_number, with_english
from bot.sandbox.solapi import (
    CANCEL_ONLY_SCHEDULED,
    NOT_FOUND_GROUP,
    SCHEDULE_IN_PAST,
    SCHEDULE_TOO_FAR,
    FakeSolapi,
)
from tests.providers.conftest import SOLAPI_SENDER

GROUPS = "/messages/v4/groups"


def client_for(fake: FakeSolapi, **kwargs: object) -> SolapiClient:
    options: dict[str, object] = {
        "base_url": fake.url,
        "sender": SOLAPI_SENDER,
        "read_timeout": 2.0,
        "retry": RetryPolicy(attempts=3, backoff=0.05, max_wait=5.0),
    }
    options.update(kwargs)
    api_key = str(options.pop("api_key", fake.api_key))
    api_secret = str(options.pop("api_secret", fake.api_secret))
    return SolapiClient(api_key, api_secret, **options)  # type: ignore[arg-type]


def in_hours(hours: float) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


def verbatim(error: ProviderError) -> str:
    """Solapi's own message, without the English explanation the client adds beside it."""
    return error.message.split(" (in English: ", 1)[0]


async def expect_error(call: object) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call  # type: ignore[misc]
    return caught.value


# -- the protocol and status ------------------------------------------------------------------


def test_client_is_a_provider(solapi_client: SolapiClient) -> None:
    assert isinstance(solapi_client, Provider)
    assert solapi_client.name is ProviderName.SOLAPI


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("PENDING", SendState.PENDING),
        ("SCHEDULED", SendState.SCHEDULED),
        ("SENDING", SendState.SENDING),
        ("COMPLETE", SendState.SENT),
        ("FAILED", SendState.FAILED),
        ("DELETED", SendState.DELETED),
    ],
)
async def test_status_of_each_group_state(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient, word: str, state: SendState
) -> None:
    send_at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=123000)
    group_id = fake_solapi.add_group(
        status=word,
        scheduled_at=send_at if word == "SCHEDULED" else None,
        recipients=["01011112222", "01033334444", "01055556666"],
    )
    result = await solapi_client.status(group_id)
    assert result.id == group_id
    assert result.state is state
    assert result.status == word
    assert result.recipient_count == 3
    assert result.provider == "solapi"
    if word == "SCHEDULED":
        assert result.send_at == send_at
        assert result.send_at.tzinfo is not None
    assert fake_solapi.calls("GET", f"{GROUPS}/{group_id}") == 1


async def test_status_of_a_message_gives_its_recipient_text_and_group(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    send_at = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    group_id = fake_solapi.add_group(
        status="SCHEDULED", scheduled_at=send_at, recipients=["01011112222", "01033334444"], text="내일 회의"
    )
    message_id = fake_solapi.group_message_ids[group_id][1]
    assert message_id.startswith("M4V") and len(message_id) == 32

    result = await solapi_client.status(message_id)
    assert result.id == message_id
    assert result.state is SendState.SCHEDULED
    assert result.recipients == ("01033334444",)
    assert result.text == "내일 회의"
    assert result.raw["groupId"] == group_id
    assert result.send_at == send_at


async def test_status_of_a_delivered_message(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    group_id = fake_solapi.add_group(status="COMPLETE")
    message_id = fake_solapi.group_message_ids[group_id][0]
    result = await solapi_client.status(message_id)
    assert result.state is SendState.SENT
    assert fake_solapi.messages[message_id]["statusCode"] == "4000"


async def test_unknown_group_and_message_are_not_found(solapi_client: SolapiClient) -> None:
    error = await expect_error(solapi_client.status("G4V20261124090000ABCDEFGHIJ12345"))
    assert error.kind is ErrorKind.NOT_FOUND
    assert error.code == "ResourceNotFound"
    assert verbatim(error) == NOT_FOUND_GROUP
    assert error.http_status == 404

    error = await expect_error(solapi_client.status("M4V20261124090000ABCDEFGHIJ12345"))
    assert error.kind is ErrorKind.NOT_FOUND
    assert "M4V20261124090000ABCDEFGHIJ12345" in error.message


async def test_malformed_group_id_is_refused_by_the_provider(solapi_client: SolapiClient) -> None:
    error = await expect_error(solapi_client.status("G4Vnot-a-group"))
    assert error.kind is ErrorKind.REJECTED
    assert (error.code, verbatim(error), error.http_status) == ("ValidationError", "유효하지 않은 groupId", 400)


async def test_a_scheduled_group_whose_time_passed_reads_complete(fake_solapi: FakeSolapi) -> None:
    clock = FrozenClock(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    fake = FakeSolapi(now=clock.now).start()
    client = client_for(fake, clock=clock)
    try:
        group_id = fake.add_group(status="SCHEDULED", scheduled_at=clock.now() + timedelta(hours=1))
        assert (await client.status(group_id)).state is SendState.SCHEDULED
        clock.advance(timedelta(hours=1, seconds=1))
        result = await client.status(group_id)
        assert result.state is SendState.SENT
        assert result.status == "COMPLETE"
        assert fake.groups[group_id]["count"]["sentSuccess"] == 1
    finally:
        await client.aclose()
        fake.stop()


# -- cancel -----------------------------------------------------------------------------------


async def test_cancel_scheduled_group_makes_it_failed(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED")
    result = await solapi_client.cancel(group_id)
    assert result.state is SendState.FAILED
    assert result.status == "FAILED"
    assert fake_solapi.groups[group_id]["status"] == "FAILED"
    assert fake_solapi.groups[group_id]["log"][-1]["message"] == "메시지 예약이 성공적으로 취소됐습니다."
    assert fake_solapi.calls("DELETE", "/schedule") == 1


async def test_cancel_pending_group_is_refused_with_the_korean_message(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    error = await expect_error(solapi_client.cancel(group_id))
    assert error.kind is ErrorKind.REJECTED
    assert error.code == "InvalidStatus"
    assert error.message == (
        "'SCHEDULED' 상태의 그룹만 취소가 가능합니다. (in English: only a SCHEDULED group can be cancelled)"
    )
    assert error.http_status == 400
    assert "'SCHEDULED' 상태의 그룹만 취소가 가능합니다." in str(error)
    assert fake_solapi.groups[group_id]["status"] == "PENDING"
    assert fake_solapi.calls("DELETE", "/schedule") == 1  # a 4xx is not retried


async def test_cancel_unknown_group(solapi_client: SolapiClient) -> None:
    error = await expect_error(solapi_client.cancel("G4V20261124090000ZZZZZZZZZZZZZZZ"))
    assert (error.kind, error.code, verbatim(error)) == (
        ErrorKind.NOT_FOUND,
        "ResourceNotFound",
        NOT_FOUND_GROUP,
    )


async def test_cancel_of_one_message_names_its_group(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED", recipients=["01011112222", "01033334444"])
    message_id = fake_solapi.group_message_ids[group_id][0]
    error = await expect_error(solapi_client.cancel(message_id))
    assert error.kind is ErrorKind.REJECTED
    assert group_id in error.message
    assert "whole groups" in error.message
    assert fake_solapi.groups[group_id]["status"] == "SCHEDULED"
    assert fake_solapi.calls("DELETE") == 0


async def test_cancel_is_retried_after_a_5xx_with_a_fresh_signature(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED")
    fake_solapi.server.faults.status(
        503,
        b'{"errorCode":"ServiceUnavailable","errorMessage":"busy"}',
        method="DELETE",
        path_contains="/schedule",
        times=1,
    )
    result = await solapi_client.cancel(group_id)
    assert result.state is SendState.FAILED
    assert fake_solapi.groups[group_id]["status"] == "FAILED"
    cancels = fake_solapi.server.requests_to("DELETE", "/schedule")
    assert len(cancels) == 2
    signatures = [r.headers["authorization"] for r in fake_solapi.requests]
    assert len(signatures) == len(set(signatures)), "a signature was reused"


async def test_cancel_whose_answer_was_lost_is_recognised_as_done(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED")
    fake_solapi.lose_answer("DELETE", "/schedule", status=502)
    result = await solapi_client.cancel(group_id)
    # the 1st attempt cancelled it (answer lost); the retry met InvalidStatus; the GET shows FAILED
    assert result.state is SendState.FAILED
    assert fake_solapi.calls("DELETE", "/schedule") == 2
    assert fake_solapi.groups[group_id]["status"] == "FAILED"


async def test_retried_cancel_of_a_pending_group_still_reports_invalid_status(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    fake_solapi.server.faults.status(500, method="DELETE", path_contains="/schedule", times=1)
    error = await expect_error(solapi_client.cancel(group_id))
    assert error.code == "InvalidStatus"
    assert verbatim(error) == CANCEL_ONLY_SCHEDULED
    assert fake_solapi.groups[group_id]["status"] == "PENDING"


async def test_cancel_of_an_already_cancelled_group_is_refused_without_retry(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    # only a *retried* cancel may read "FAILED" as "done by our earlier attempt"
    group_id = fake_solapi.add_group(status="FAILED")
    error = await expect_error(solapi_client.cancel(group_id))
    assert (error.code, verbatim(error)) == ("InvalidStatus", CANCEL_ONLY_SCHEDULED)


# -- auth -------------------------------------------------------------------------------------


async def test_wrong_secret_is_an_auth_error(fake_solapi: FakeSolapi) -> None:
    client = client_for(fake_solapi, api_secret="not-the-secret")
    try:
        error = await expect_error(client.status(fake_solapi.add_group()))
        assert error.kind is ErrorKind.AUTH
        assert (error.code, error.http_status) == ("SignatureDoesNotMatch", 403)
        assert verbatim(error) == "생성한 Signature가 일치하지 않음"
        error = await expect_error(client.ping())
        assert error.kind is ErrorKind.AUTH
    finally:
        await client.aclose()


async def test_unknown_api_key_is_an_auth_error(fake_solapi: FakeSolapi) -> None:
    client = client_for(fake_solapi, api_key="NCSNOSUCHKEY0000")
    try:
        error = await expect_error(client.cancel(fake_solapi.add_group()))
        assert (error.kind, error.code, error.http_status) == (ErrorKind.AUTH, "InvalidAPIKey", 403)
        assert fake_solapi.calls("DELETE") == 1  # an auth error is not retried
    finally:
        await client.aclose()


async def test_client_clock_off_by_more_than_15_minutes(fake_solapi: FakeSolapi) -> None:
    client = client_for(fake_solapi, clock=FrozenClock(datetime.now(UTC) - timedelta(minutes=16)))
    try:
        error = await expect_error(client.ping())
        assert (error.kind, error.code) == (ErrorKind.AUTH, "RequestTimeTooSkewed")
    finally:
        await client.aclose()


def _header(
    fake: FakeSolapi,
    *,
    salt: str = "a1b2c3d4e5f6a7b8",
    date: str | None = None,
    style: str = "docs",
    method: str = "HMAC-SHA256",
) -> str:
    date = date or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.md5 if method == "HMAC-MD5" else hashlib.sha256
    signature = hmac.new(fake.api_secret.encode(), (date + salt).encode(), digest).hexdigest()
    if style == "python-sdk":  # solapi-python capitalises the first two keys
        return f"{method} ApiKey={fake.api_key}, Date={date}, salt={salt}, signature={signature}"
    return f"{method} apiKey={fake.api_key}, date={date}, salt={salt}, signature={signature}"


async def test_fake_checks_signatures_as_solapi_does(fake_solapi: FakeSolapi) -> None:
    async with httpx.AsyncClient(base_url=fake_solapi.url) as http:

        async def get(header: str | None) -> httpx.Response:
            headers = {"Authorization": header} if header is not None else {}
            return await http.get(GROUPS, headers=headers)

        assert (await get(_header(fake_solapi))).status_code == 200
        # the Python SDK's key case, its local-time offset date with microseconds, and HMAC-MD5
        local = datetime.now(UTC).astimezone().isoformat()
        assert (
            await get(
                _header(fake_solapi, style="python-sdk", date=local, salt="0123456789abcdef0123456789abcdef")
            )
        ).status_code == 200
        assert (await get(_header(fake_solapi, method="HMAC-MD5", salt="md5-salt-12345"))).status_code == 200

        reused = _header(fake_solapi, salt="reused-salt-0001")
        assert (await get(reused)).status_code == 200
        answer = await get(reused)
        assert answer.status_code == 403
        assert answer.json()["errorCode"] == "DuplicatedSignature"

        for salt in ("short", "x" * 65):
            answer = await get(_header(fake_solapi, salt=salt))
            assert answer.status_code == 403, salt
        stale = (datetime.now(UTC) - timedelta(minutes=16)).strftime("%Y-%m-%dT%H:%M:%SZ")
        answer = await get(_header(fake_solapi, date=stale))
        assert (answer.status_code, answer.json()["errorCode"]) == (403, "RequestTimeTooSkewed")
        tampered = _header(fake_solapi, salt="tampered-salt-01")[:-4] + "0000"
        assert (await get(tampered)).json()["errorCode"] == "SignatureDoesNotMatch"
        assert (await get(None)).status_code == 403


# -- send -------------------------------------------------------------------------------------


async def test_send_pending_group(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    group_id = fake_solapi.add_group(status="PENDING", recipients=["01011112222", "01033334444"])
    result = await solapi_client.send(group_id)
    assert result.state is SendState.SENDING
    assert fake_solapi.groups[group_id]["status"] == "SENDING"
    assert fake_solapi.calls("POST", "/send") == 1


@pytest.mark.parametrize(
    ("word", "code", "http_status", "message"),
    [
        ("SCHEDULED", "ScheduledGroup", 409, "발송 예약된 그룹이므로 발송이 불가능합니다."),
        ("SENDING", "GroupInProcessing", 409, "이미 발송 요청된 그룹입니다."),
        ("COMPLETE", "AlreadySent", 409, "이미 발송이 완료된 그룹입니다."),
        ("DELETED", "DeletedGroup", 400, "삭제 처리된 그룹으로는 발송이 안됩니다."),
        ("FAILED", "FailedGroup", 400, "그룹 생성에 실패했던 그룹입니다.\n그룹 로그를 확인해주세요."),
    ],
)
async def test_send_only_pending_groups(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient, word: str, code: str, http_status: int, message: str
) -> None:
    group_id = fake_solapi.add_group(status=word)
    error = await expect_error(solapi_client.send(group_id))
    assert (error.kind, error.code, error.http_status, verbatim(error)) == (
        ErrorKind.REJECTED,
        code,
        http_status,
        message,
    )
    assert fake_solapi.groups[group_id]["status"] == word


async def test_send_hitting_a_5xx_is_not_retried(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    fake_solapi.server.faults.status(503, method="POST", path_contains="/send")
    error = await expect_error(solapi_client.send(group_id))
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.outcome_unknown
    assert fake_solapi.calls("POST", "/send") == 1


async def test_send_that_times_out_is_not_retried(fake_solapi: FakeSolapi) -> None:
    client = client_for(fake_solapi, read_timeout=0.3)
    try:
        group_id = fake_solapi.add_group(status="PENDING")
        fake_solapi.server.faults.latency(0.6, method="POST", path_contains="/send")
        error = await expect_error(client.send(group_id))
        assert error.kind is ErrorKind.TIMEOUT
        assert fake_solapi.calls("POST", "/send") == 1
        time.sleep(0.5)  # the slow request still lands: that is why a send must not be repeated
        assert fake_solapi.groups[group_id]["status"] == "SENDING"
        assert fake_solapi.calls("POST", "/send") == 1
    finally:
        await client.aclose()


# -- rate limits, garbage, timeouts -----------------------------------------------------------


async def test_429_retry_after_is_honoured(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED")
    fake_solapi.server.faults.rate_limit(
        retry_after=0.6,
        method="DELETE",
        times=1,
        body=b'{"errorCode":"TooManyRequests","errorMessage":"slow down"}',
    )
    result = await solapi_client.cancel(group_id)
    assert result.state is SendState.FAILED
    first, second = fake_solapi.server.requests_to("DELETE", "/schedule")
    assert second.at - first.at >= 0.55


async def test_fake_rate_limit_answers_429_and_the_client_waits(fake_solapi: FakeSolapi) -> None:
    fake = FakeSolapi(rate_limit=(2, 1.0)).start()
    client = client_for(fake)
    try:
        group_id = fake.add_group(status="SCHEDULED")
        started = time.monotonic()
        for _ in range(3):
            assert (await client.status(group_id)).state is SendState.SCHEDULED
        assert time.monotonic() - started >= 0.5
        assert fake.calls("GET") == 4  # the third was refused once with 429, then let through
    finally:
        await client.aclose()
        fake.stop()


async def test_429_asking_too_long_a_wait_is_reported(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    fake_solapi.server.faults.rate_limit(
        retry_after=120, method="GET", body=b'{"errorCode":"TooManyRequests","errorMessage":"slow down"}'
    )
    error = await expect_error(solapi_client.ping())
    assert error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == 120
    assert error.code == "TooManyRequests"
    assert fake_solapi.calls("GET") == 1


@pytest.mark.parametrize(
    ("body", "status", "content_type", "words"),
    [
        (b"<html><body>502 Bad Gateway</body></html>", 200, "text/html", "502 Bad Gateway"),
        (b'{"status":', 200, "application/json", "unreadable"),
        (b'[{"status":"SCHEDULED"}]', 200, "application/json", "not a JSON object"),
        (b'{"groupId":"G4V20261124090000ABCDEFGHIJ12345","status":5}', 200, "application/json", "status"),
        (
            b'{"groupId":"G4V20261124090000ABCDEFGHIJ12345","status":"SCHEDULED","scheduledDate":"soon"}',
            200,
            "application/json",
            "scheduledDate",
        ),
        (b'{"message":"no code here"}', 400, "application/json", "errorCode"),
        (b"<html>Bad Request</html>", 400, "text/html", "Bad Request"),
    ],
)
async def test_garbage_answers(
    fake_solapi: FakeSolapi,
    solapi_client: SolapiClient,
    body: bytes,
    status: int,
    content_type: str,
    words: str,
) -> None:
    group_id = "G4V20261124090000ABCDEFGHIJ12345"
    fake_solapi.server.faults.garbage(
        body, status=status, headers={"content-type": content_type}, method="GET", times=1
    )
    error = await expect_error(solapi_client.status(group_id))
    assert error.kind is ErrorKind.GARBAGE, error
    assert words in error.message
    assert error.provider == "solapi"


async def test_html_502_from_a_gateway_is_unavailable_and_says_so(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    fake_solapi.server.faults.garbage(b"<html>502 Bad Gateway</html>", status=502, method="GET")
    error = await expect_error(solapi_client.ping())
    assert error.kind is ErrorKind.UNAVAILABLE
    assert error.http_status == 502
    assert "502" in str(error)
    assert fake_solapi.calls("GET") == 3  # a read is retried


async def test_read_timeout(fake_solapi: FakeSolapi) -> None:
    client = client_for(fake_solapi, read_timeout=0.3, retry=RetryPolicy(attempts=2, backoff=0.05))
    try:
        fake_solapi.server.faults.latency(0.6, method="GET")
        error = await expect_error(client.status(fake_solapi.add_group()))
        assert error.kind is ErrorKind.TIMEOUT
        assert fake_solapi.calls("GET") == 2
    finally:
        await client.aclose()


async def test_dropped_connection_on_a_read_is_retried(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED")
    fake_solapi.server.faults.drop(method="GET", times=1)
    assert (await solapi_client.status(group_id)).state is SendState.SCHEDULED
    assert fake_solapi.calls("GET") == 2


# -- schedule ---------------------------------------------------------------------------------


async def test_schedule_creates_one_scheduled_group(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    send_at = in_hours(3).replace(microsecond=0)
    outcome = await solapi_client.schedule(
        ScheduleRequest(to=("+82 10-1111-2222", "01033334444"), text="회의 알림", send_at=send_at)
    )
    assert outcome.failed == []
    [state] = outcome.scheduled
    assert state.state is SendState.SCHEDULED
    assert state.send_at == send_at
    assert state.recipients == ("+82 10-1111-2222", "01033334444")
    assert len(fake_solapi.groups) == 1
    group = fake_solapi.groups[state.id]
    assert group["status"] == "SCHEDULED"
    assert group["scheduledDate"] == send_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert group["count"]["registeredSuccess"] == 2
    sent = fake_solapi.messages_of(state.id)
    assert [m["to"] for m in sent] == ["01011112222", "01033334444"]
    assert {m["from"] for m in sent} == {SOLAPI_SENDER}
    assert (
        fake_solapi.calls("POST", GROUPS),
        fake_solapi.calls("PUT"),
        fake_solapi.calls("POST", "/schedule"),
    ) == (
        2,
        1,
        1,
    )
    assert (await solapi_client.status(state.id)).state is SendState.SCHEDULED


async def test_schedule_more_than_six_months_ahead_is_refused_and_cleaned_up(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    error = await expect_error(
        solapi_client.schedule(
            ScheduleRequest(
                to=("01011112222",), text="too far", send_at=datetime.now(UTC) + timedelta(days=190)
            )
        )
    )
    assert (error.kind, error.code, verbatim(error)) == (
        ErrorKind.REJECTED,
        "InvalidScheduledDate",
        SCHEDULE_TOO_FAR,
    )
    # the half-made group was deleted, so nobody can send it by mistake
    assert [g["status"] for g in fake_solapi.groups.values()] == ["DELETED"]


async def test_schedule_in_the_past_is_refused(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    error = await expect_error(
        solapi_client.schedule(
            ScheduleRequest(
                to=("01011112222",), text="late", send_at=datetime.now(UTC) - timedelta(minutes=1)
            )
        )
    )
    assert (error.code, verbatim(error)) == ("InvalidScheduledDate", SCHEDULE_IN_PAST)
    assert [g["status"] for g in fake_solapi.groups.values()] == ["DELETED"]


async def test_schedule_without_a_sender(fake_solapi: FakeSolapi) -> None:
    client = client_for(fake_solapi, sender=None)
    try:
        error = await expect_error(
            client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1)))
        )
        assert (error.kind, error.code) == (ErrorKind.REJECTED, "NoSender")
        assert "SOLAPI_FROM" in error.message
        assert fake_solapi.requests == []
        outcome = await client.schedule(
            ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1), sender="02-930-2266")
        )
        assert fake_solapi.messages_of(outcome.scheduled[0].id)[0]["from"] == "029302266"
    finally:
        await client.aclose()


async def test_korean_and_emoji_round_trip(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    text = "안녕하세요 👋 내일 오전 9시 회의입니다 🎉 — ñ"
    outcome = await solapi_client.schedule(
        ScheduleRequest(to=("01011112222",), text=text, send_at=in_hours(1))
    )
    group_id = outcome.scheduled[0].id
    [message] = fake_solapi.messages_of(group_id)
    assert message["text"] == text
    assert (await solapi_client.status(message["messageId"])).text == text


async def test_a_thousand_recipients_make_one_group(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    recipients = tuple(f"010{n:08d}" for n in range(1000))
    outcome = await solapi_client.schedule(ScheduleRequest(to=recipients, text="공지", send_at=in_hours(1)))
    [state] = outcome.scheduled
    assert state.recipient_count == 1000
    assert len(fake_solapi.groups) == 1
    assert fake_solapi.groups[state.id]["count"]["total"] == 1000
    assert fake_solapi.calls("PUT") == 1
    assert (await solapi_client.status(state.id)).recipient_count == 1000


async def test_more_than_ten_thousand_recipients_are_added_in_chunks(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    recipients = tuple(f"010{n:08d}" for n in range(10_001))
    outcome = await solapi_client.schedule(ScheduleRequest(to=recipients, text="x", send_at=in_hours(1)))
    assert outcome.scheduled[0].recipient_count == 10_001
    puts = fake_solapi.server.requests_to("PUT")
    assert [len(r.json()["messages"]) for r in puts] == [10_000, 1]


async def test_fake_refuses_more_than_ten_thousand_in_one_add(fake_solapi: FakeSolapi) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    async with httpx.AsyncClient(base_url=fake_solapi.url) as http:
        answer = await http.put(
            f"{GROUPS}/{group_id}/messages",
            json={"messages": [{"to": "01011112222", "from": "029302266", "text": "x"}] * 10_001},
            headers={"Authorization": _header(fake_solapi)},
        )
    assert answer.status_code == 413
    assert answer.json()["errorCode"] == "RecipientsTooMany"


async def test_recipients_the_provider_refuses_are_reported(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    outcome = await solapi_client.schedule(
        ScheduleRequest(to=("01011112222", "not-a-number", "01033334444"), text="x", send_at=in_hours(1))
    )
    [state] = outcome.scheduled
    assert state.recipients == ("01011112222", "01033334444")
    [(recipient, why)] = outcome.failed
    assert recipient == "not-a-number"
    assert (why.code, why.message) == ("1011", "Format Error")


async def test_schedule_where_no_recipient_is_accepted(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    error = await expect_error(
        solapi_client.schedule(ScheduleRequest(to=("nope",), text="x", send_at=in_hours(1)))
    )
    assert error.kind is ErrorKind.REJECTED
    assert "nope" in error.message
    assert [g["status"] for g in fake_solapi.groups.values()] == ["DELETED"]


async def test_schedule_failing_after_creation_deletes_the_group(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    fake_solapi.server.faults.status(500, method="PUT")
    error = await expect_error(
        solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1)))
    )
    # the schedule request was never sent, so "not scheduled" is sure despite the lost answer
    assert (error.kind, error.code, error.outcome_unknown) == (ErrorKind.REJECTED, "NotScheduled", False)
    assert "nothing was scheduled and the bot deleted it" in error.message
    assert fake_solapi.calls("PUT") == 1  # adding messages is not repeated blindly
    assert [g["status"] for g in fake_solapi.groups.values()] == ["DELETED"]


async def test_schedule_whose_answer_was_lost_but_took_effect(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    fake_solapi.lose_answer("POST", "/schedule", status=500)
    outcome = await solapi_client.schedule(
        ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1))
    )
    [state] = outcome.scheduled
    assert state.state is SendState.SCHEDULED
    assert fake_solapi.groups[state.id]["status"] == "SCHEDULED"
    assert fake_solapi.calls("POST", "/schedule") == 1


async def test_create_group_is_not_retried(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    fake_solapi.server.faults.status(503, method="POST", path_contains=GROUPS)
    error = await expect_error(
        solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1)))
    )
    assert error.kind is ErrorKind.UNAVAILABLE
    assert fake_solapi.calls("POST") == 1


# -- delete and ping --------------------------------------------------------------------------


async def test_delete_pending_group(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    result = await solapi_client.delete(group_id)
    assert result.state is SendState.DELETED
    assert fake_solapi.groups[group_id]["status"] == "DELETED"


async def test_delete_scheduled_group_is_refused(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED")
    error = await expect_error(solapi_client.delete(group_id))
    assert (error.kind, error.code, error.http_status) == (ErrorKind.REJECTED, "NotOperationalStatus", 400)
    assert error.message == (
        "PENDING 상태의 그룹만 삭제할 수 있습니다. 현재 상태는 SCHEDULED 입니다. "
        "(in English: only a PENDING group can be deleted; this one is SCHEDULED)"
    )
    assert fake_solapi.groups[group_id]["status"] == "SCHEDULED"


async def test_delete_whose_answer_was_lost_is_recognised_as_done(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    fake_solapi.lose_answer("DELETE", group_id, status=503)
    result = await solapi_client.delete(group_id)
    assert result.state is SendState.DELETED
    assert fake_solapi.calls("DELETE", group_id) == 2


async def test_send_or_delete_of_a_message_id_is_refused(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="PENDING")
    message_id = fake_solapi.group_message_ids[group_id][0]
    for call in (solapi_client.send, solapi_client.delete):
        error = await expect_error(call(message_id))
        assert error.kind is ErrorKind.REJECTED
        assert group_id in error.message
    assert fake_solapi.groups[group_id]["status"] == "PENDING"


async def test_ping(fake_solapi: FakeSolapi, solapi_client: SolapiClient) -> None:
    await solapi_client.ping()
    [request] = fake_solapi.requests
    assert (request.method, request.path, request.query) == ("GET", GROUPS, "limit=1")


def test_solapi_number() -> None:
    assert solapi_number("+82 10-1234-5678") == "01012345678"
    assert solapi_number("+82010-1234-5678") == "01012345678"
    assert solapi_number("010-1234-5678") == "01012345678"
    assert solapi_number("02-930-2266") == "029302266"


# -- numbers, counts, lengths, six months -------------------------------------------------------


async def test_a_number_outside_korea_goes_with_its_country_code_apart(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    outcome = await solapi_client.schedule(
        ScheduleRequest(to=("+15551234567", "+821033334444"), text="hello", send_at=in_hours(1))
    )
    assert outcome.failed == []
    [put] = fake_solapi.server.requests_to("PUT")
    assert put.json()["messages"] == [
        {"to": "5551234567", "country": "1", "from": SOLAPI_SENDER, "text": "hello"},
        {"to": "01033334444", "from": SOLAPI_SENDER, "text": "hello"},  # Korea: no country, as the SDK's default
    ]
    sent = fake_solapi.messages_of(outcome.scheduled[0].id)
    assert [(m["country"], m["to"], m["status"]) for m in sent] == [
        ("1", "5551234567", "SCHEDULED"), ("82", "01033334444", "SCHEDULED")]
    assert fake_solapi.groups[outcome.scheduled[0].id]["countForCharge"]["sms"] == {"1": 1, "82": 1}


async def test_fake_refuses_an_international_number_in_to(fake_solapi: FakeSolapi) -> None:
    """What the bot used to send: `+1555…` in `to` and no `country` is a format error."""
    group_id = fake_solapi.add_group(status="PENDING", recipients=())
    async with httpx.AsyncClient(base_url=fake_solapi.url) as http:
        answer = await http.put(
            f"{GROUPS}/{group_id}/messages",
            json={"messages": [{"to": "+15551234567", "from": "029302266", "text": "x"}]},
            headers={"Authorization": _header(fake_solapi)},
        )
    assert answer.json()["resultList"][0]["statusCode"] == "1011"


async def test_recipients_are_counted_from_registered_success(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    group_id = fake_solapi.add_group(status="SCHEDULED", recipients=("01011112222", "not-a-number"))
    assert fake_solapi.groups[group_id]["count"]["total"] == 2  # the refused registration counts too
    assert (await solapi_client.status(group_id)).recipient_count == 1
    fake_solapi.groups[group_id]["count"]["total"] = 0  # as Solapi has answered: total 0, registeredSuccess 1
    assert (await solapi_client.status(group_id)).recipient_count == 1


async def test_the_fake_refuses_more_than_2000_euc_kr_bytes_with_solapis_code(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    outcome = await solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="가" * 1000, send_at=in_hours(1)))
    assert [m["type"] for m in fake_solapi.messages_of(outcome.scheduled[0].id)] == ["LMS"]
    error = await expect_error(
        solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="가" * 1001, send_at=in_hours(1)))
    )
    assert error.code == "1031" and "01011112222: SMS는 90byte LMS, MMS는 2000byte ATA" in error.message
    assert "in English: too long: SMS up to 90 bytes, LMS and MMS up to 2,000 bytes (EUC-KR)" in error.message


async def test_six_calendar_months_not_183_days() -> None:
    now = datetime(2026, 8, 31, 0, 0, tzinfo=UTC)  # 09:00 on 31 August in Korea
    clock = FrozenClock(now)
    with FakeSolapi(now=clock.now) as fake:
        client = client_for(fake, clock=clock)
        try:
            latest = datetime(2027, 2, 28, 0, 0, tzinfo=UTC)  # 28 February: no 31st
            ok = await client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=latest))
            assert ok.scheduled[0].state is SendState.SCHEDULED
            too_far = latest + timedelta(days=1)  # 182 days ahead: under 183 days, over six months
            error = await expect_error(
                client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=too_far))
            )
            assert (error.code, verbatim(error)) == ("InvalidScheduledDate", SCHEDULE_TOO_FAR)
        finally:
            await client.aclose()
    assert not schedule_window(ProviderName.SOLAPI, too_far, now).allowed
    assert "no later than 2027-02-28 09:00 KST" in schedule_window(ProviderName.SOLAPI, too_far, now).reason
    assert schedule_window(ProviderName.SOLAPI, latest, now).allowed


def test_unknown_errors_are_shown_as_they_came() -> None:
    assert with_english("SomethingNew", "새로운 오류입니다.") == "새로운 오류입니다."
    assert with_english("InvalidAPIKey", "Invalid API Key") == "Invalid API Key"  # English already
    assert with_english("NotEnoughBalance", "잔액이 부족합니다.") == (
        "잔액이 부족합니다. (in English: the Solapi account's balance is too low)")


# -- a lost answer while scheduling is settled by reading the group ----------------------------------


async def test_a_schedule_whose_answer_is_lost_while_pending_is_deleted_and_surely_not_scheduled(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    fake_solapi.server.faults.status(500, method="POST", path_contains="/schedule")  # not carried out
    error = await expect_error(
        solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1)))
    )
    assert (error.code, error.outcome_unknown) == ("NotScheduled", False)
    assert "was still PENDING, so the bot deleted it: nothing will be sent" in error.message
    assert [g["status"] for g in fake_solapi.groups.values()] == ["DELETED"]
    assert fake_solapi.calls("POST", "/schedule") == 1


async def test_a_schedule_that_took_but_whose_delete_was_refused_is_reported_scheduled(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    """Used to be: the cleanup DELETE failed quietly and the bot said "not scheduled" for a group
    Solapi held SCHEDULED. Now the group is read back and the schedule reported."""
    fake_solapi.lose_answer("POST", "/schedule", status=504)
    fake_solapi.server.faults.drop(method="GET", times=3)  # the first read-back fails entirely
    outcome = await solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1)))
    [state] = outcome.scheduled
    assert state.state is SendState.SCHEDULED and fake_solapi.groups[state.id]["status"] == "SCHEDULED"


async def test_a_schedule_whose_group_cannot_be_read_back_stays_unknown_and_names_the_group(
    fake_solapi: FakeSolapi, solapi_client: SolapiClient
) -> None:
    fake_solapi.lose_answer("POST", "/schedule", status=504)
    fake_solapi.server.faults.drop(method="GET", times=None)
    fake_solapi.server.faults.drop(method="DELETE", times=None)
    error = await expect_error(
        solapi_client.schedule(ScheduleRequest(to=("01011112222",), text="x", send_at=in_hours(1)))
    )
    [group_id] = fake_solapi.groups
    assert error.outcome_unknown  # never "not scheduled": Solapi holds it SCHEDULED
    assert fake_solapi.groups[group_id]["status"] == "SCHEDULED"
    assert f"it may be scheduled. `/sms status {group_id}` tells" in error.message

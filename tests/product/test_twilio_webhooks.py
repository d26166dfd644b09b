"""POST /webhooks/twilio over real HTTP: status callbacks, signed as Twilio signs them (checked with the
official package's RequestValidator), land in the ledger and on the notice; forged, foreign and replayed
ones do not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select
from twilio.request_validator import RequestValidator

from bot.sandbox.harness import BotHarness, reply_text
from bot.sandbox.slack import FakeSlack
from bot.sandbox.twilio import FakeTwilio
from db.models import LedgerEntry, TrackedSend
from tests.conftest import twilio_settings

CHANNEL = "C0OPS0001"
CALLBACK_URL = "https://smsops.example.com/webhooks/twilio"


class World:
    def __init__(self, directory: Path) -> None:
        self.slack = FakeSlack().start()
        self.twilio = FakeTwilio().start()
        self.bot = BotHarness(self.slack, f"sqlite:///{directory / 'smsops.db'}",
                              twilio_status_callback_url=CALLBACK_URL, **twilio_settings(self.twilio)).start()

    def stop(self) -> None:
        self.bot.stop()
        self.twilio.stop()
        self.slack.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("twilio-webhooks"))
    try:
        yield made
    finally:
        made.stop()


def ledger(bot: BotHarness) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq))))


def scheduled(world: World) -> TrackedSend:
    _, token = world.bot.command("schedule twilio +15558675310 in 2h Doors open at 10", channel=CHANNEL)
    reply = reply_text(world.bot.final_reply(token))
    assert "Scheduled with Twilio" in reply
    with Session(world.bot.services.engine) as session:
        [send] = [s for s in session.exec(select(TrackedSend)) if s.target in reply]
    assert send.notice_ts
    return send


def post(world: World, form: dict[str, str], signature: str) -> httpx.Response:
    return world.bot.http.post(f"{world.bot.url}/webhooks/twilio", data=form,
                               headers={"X-Twilio-Signature": signature})


def callback(world: World, sid: str, status: str, **extra: str) -> tuple[dict[str, str], str]:
    """The form Twilio posts, signed with the SDK's own RequestValidator (the reference scheme)."""
    form, _ = world.twilio.status_callback(sid, status, CALLBACK_URL)
    form.update(extra)
    return form, RequestValidator(world.twilio.auth_token).compute_signature(CALLBACK_URL, form)


def notice_text(world: World, send: TrackedSend) -> str:
    [message] = [m for m in world.slack.channel_messages(CHANNEL) if m.ts == send.notice_ts]
    return reply_text({"text": message.text, "blocks": message.blocks})


def test_the_schedule_asks_twilio_for_status_callbacks_at_the_public_url(world: World) -> None:
    scheduled(world)
    create = world.twilio.server.requests_to("POST", "/Messages.json")[-1]
    assert b"StatusCallback=https%3A%2F%2Fsmsops.example.com%2Fwebhooks%2Ftwilio" in create.body


def test_sent_then_delivered_are_recorded_and_shown_on_the_notice(world: World) -> None:
    send = scheduled(world)
    before = len(ledger(world.bot))

    answer = post(world, *callback(world, send.target, "sent"))
    assert answer.status_code == 200 and answer.json() == {"recorded": True}
    assert "Sent" in notice_text(world, send)
    answer = post(world, *callback(world, send.target, "delivered"))
    assert answer.status_code == 200
    assert "Delivered — Twilio reported `delivered`" in notice_text(world, send)

    new = ledger(world.bot)[before:]
    assert [(e.actor, e.action, e.outcome, e.provider, e.target, e.channel) for e in new] == [
        ("system", "sent", "ok", "twilio", send.target, CHANNEL)] * 2
    with Session(world.bot.services.engine) as session:
        assert session.get(TrackedSend, send.id).provider_status == "delivered"


def test_an_undelivered_message_is_marked_failed_with_twilios_error_code(world: World) -> None:
    send = scheduled(world)
    answer = post(world, *callback(world, send.target, "undelivered", ErrorCode="30003"))
    assert answer.status_code == 200
    assert "Failed" in notice_text(world, send)
    last = ledger(world.bot)[-1]
    assert (last.action, last.outcome, last.provider) == ("failed", "error", "twilio")
    assert "undelivered (error 30003)" in last.detail
    with Session(world.bot.services.engine) as session:
        assert session.get(TrackedSend, send.id).state == "failed"


def test_forged_tampered_and_foreign_callbacks_are_refused_and_recorded(world: World) -> None:
    send = scheduled(world)
    shown = notice_text(world, send)
    count = len(ledger(world.bot))
    form, good = callback(world, send.target, "delivered")

    forged = post(world, form, RequestValidator("0" * 32).compute_signature(CALLBACK_URL, form))
    tampered = post(world, {**form, "MessageStatus": "failed"}, good)
    unsigned = post(world, form, "")
    other_url = post(world, form, RequestValidator(world.twilio.auth_token).compute_signature(
        "https://elsewhere.example.com/webhooks/twilio", form))
    foreign_form = {**form, "AccountSid": "AC" + "e" * 32}
    foreign = post(world, foreign_form,
                   RequestValidator(world.twilio.auth_token).compute_signature(CALLBACK_URL, foreign_form))

    for answer in (forged, tampered, unsigned, other_url, foreign):
        assert answer.status_code == 401
    assert "another Twilio account" in foreign.json()["error"]
    refused = ledger(world.bot)[count:]
    assert [(e.actor, e.action, e.outcome, e.provider) for e in refused] == [
        ("system", "refused", "refused", "twilio")] * 5
    assert notice_text(world, send) == shown
    assert all(world.twilio.auth_token not in e.detail for e in refused)


def test_a_replayed_callback_is_recorded_once_and_a_late_sent_does_not_undo_delivered(world: World) -> None:
    send = scheduled(world)
    count = len(ledger(world.bot))
    delivered = callback(world, send.target, "delivered")
    assert post(world, *delivered).json() == {"recorded": True}
    assert post(world, *delivered).json() == {"duplicate": True}
    assert post(world, *callback(world, send.target, "sent")).status_code == 200
    assert [e.action for e in ledger(world.bot)[count:]] == ["sent", "sent"]
    with Session(world.bot.services.engine) as session:
        assert session.get(TrackedSend, send.id).provider_status == "delivered"
    assert "Delivered" in notice_text(world, send)


def test_intermediate_statuses_are_acknowledged_and_ignored(world: World) -> None:
    send = scheduled(world)
    count = len(ledger(world.bot))
    answer = post(world, *callback(world, send.target, "queued"))
    assert answer.json() == {"ignored": "queued"}
    assert len(ledger(world.bot)) == count

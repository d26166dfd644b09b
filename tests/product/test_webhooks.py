"""POST /webhooks/telnyx over real HTTP: signed delivery reports land in the ledger and on the notice."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime

import pytest
from nacl.signing import SigningKey
from sqlmodel import Session, col, select

from bot.sandbox.harness import reply_text
from db.models import LedgerEntry, TrackedSend

CHANNEL = "C0OPS0001"


KEY = SigningKey.generate()


@pytest.fixture
def key() -> SigningKey:
    return KEY


@pytest.fixture
def hooked(world_factory):
    """A bot (one for the module) that trusts KEY for Telnyx webhooks."""
    return world_factory(telnyx_public_key=base64.b64encode(KEY.verify_key.encode()).decode()).bot


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq))))


def scheduled_telnyx(bot) -> TrackedSend:
    _, token = bot.command("schedule telnyx +15551230001 in 2h Doors open at 10", channel=CHANNEL)
    reply = reply_text(bot.final_reply(token))
    assert "Scheduled with Telnyx" in reply
    with Session(bot.services.engine) as session:
        [send] = [s for s in session.exec(select(TrackedSend)) if s.target in reply]
    assert send.notice_ts
    return send


def event(kind: str, message_id: str, status: str, event_id: str | None = None) -> bytes:
    return json.dumps({"data": {
        "event_type": kind, "id": event_id or str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(),
        "record_type": "event",
        "payload": {"id": message_id, "record_type": "message", "direction": "outbound", "type": "SMS",
                    "to": [{"phone_number": "+15551230001", "status": status}], "text": "Doors open at 10"},
    }, "meta": {"attempt": 1, "delivered_to": "https://bot.example/webhooks/telnyx"}}).encode()


def post(bot, body: bytes, key: SigningKey, *, timestamp: int | None = None, signature: str | None = None):
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = signature or base64.b64encode(key.sign(stamp.encode() + b"|" + body).signature).decode()
    return bot.http.post(f"{bot.url}/webhooks/telnyx", content=body, headers={
        "content-type": "application/json", "telnyx-signature-ed25519": signed, "telnyx-timestamp": stamp})


def notice(bot, send: TrackedSend):
    [message] = [m for m in bot.slack.channel_messages(CHANNEL) if m.ts == send.notice_ts]
    return message


def notice_text(bot, send: TrackedSend) -> str:
    message = notice(bot, send)
    return reply_text({"text": message.text, "blocks": message.blocks})


def test_sent_then_delivered_are_recorded_and_shown_on_the_notice(hooked, key):
    send = scheduled_telnyx(hooked)
    before = len(ledger(hooked))

    answer = post(hooked, event("message.sent", send.target, "sent"), key)
    assert answer.status_code == 200 and answer.json() == {"recorded": True}
    text = notice_text(hooked, send)
    assert "Sent" in text and "`sent`" in text
    assert not [b for b in notice(hooked, send).blocks if b["type"] == "actions"], \
        "a sent message's notice keeps no Cancel button"

    answer = post(hooked, event("message.finalized", send.target, "delivered"), key)
    assert answer.status_code == 200
    assert "Delivered" in notice_text(hooked, send)

    new = ledger(hooked)[before:]
    assert [(e.actor, e.action, e.outcome, e.provider, e.target, e.channel) for e in new] == [
        ("system", "sent", "ok", "telnyx", send.target, CHANNEL),
        ("system", "sent", "ok", "telnyx", send.target, CHANNEL),
    ]
    assert "message.sent" in new[0].detail and "message.finalized: delivered" in new[1].detail
    with Session(hooked.services.engine) as session:
        assert session.get(TrackedSend, send.id).provider_status == "delivered"


def test_a_failed_delivery_marks_the_send_failed(hooked, key):
    send = scheduled_telnyx(hooked)
    assert post(hooked, event("message.finalized", send.target, "delivery_failed"), key).status_code == 200
    assert "Failed" in notice_text(hooked, send)
    last = ledger(hooked)[-1]
    assert (last.action, last.outcome, last.target) == ("failed", "error", send.target)
    with Session(hooked.services.engine) as session:
        assert session.get(TrackedSend, send.id).state == "failed"


def test_a_bad_signature_is_refused_and_recorded(hooked, key):
    send = scheduled_telnyx(hooked)
    before = notice_text(hooked, send)
    count = len(ledger(hooked))
    body = event("message.finalized", send.target, "delivered")
    someone_else = SigningKey.generate()

    forged = post(hooked, body, someone_else)
    garbled = post(hooked, body, key, signature="bm90IGEgc2lnbmF0dXJl")
    tampered_body = body.replace(b"delivered", b"delivery_failed")
    stamp = int(time.time())
    good_for_other_body = base64.b64encode(key.sign(f"{stamp}|".encode() + body).signature).decode()
    tampered = post(hooked, tampered_body, key, timestamp=stamp, signature=good_for_other_body)

    for answer in (forged, garbled, tampered):
        assert answer.status_code == 401
        assert "signature" in answer.json()["error"]
    refused = ledger(hooked)[count:]
    assert [(e.actor, e.action, e.outcome, e.provider) for e in refused] == [
        ("system", "refused", "refused", "telnyx")] * 3
    assert all("delivery webhook refused" in e.detail for e in refused)
    assert notice_text(hooked, send) == before


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_a_timestamp_more_than_five_minutes_off_is_refused(hooked, key, skew):
    send = scheduled_telnyx(hooked)
    count = len(ledger(hooked))
    answer = post(hooked, event("message.finalized", send.target, "delivered"), key,
                  timestamp=int(time.time()) - skew)  # correctly signed, but stale (or from the future)
    assert answer.status_code == 401 and "5 minutes" in answer.json()["error"]
    [refused] = ledger(hooked)[count:]
    assert (refused.action, refused.outcome) == ("refused", "refused")
    assert "5 minutes" in refused.detail


def test_a_redelivered_event_is_recorded_once(hooked, key):
    send = scheduled_telnyx(hooked)
    count = len(ledger(hooked))
    body = event("message.finalized", send.target, "delivered", event_id=str(uuid.uuid4()))
    first = post(hooked, body, key)
    again = post(hooked, body, key)  # Telnyx retries a webhook it thinks was not received
    assert first.json() == {"recorded": True}
    assert again.status_code == 200 and again.json() == {"duplicate": True}
    assert len(ledger(hooked)) == count + 1


def test_an_unknown_message_is_still_recorded(hooked, key):
    message_id = str(uuid.uuid4())
    count = len(ledger(hooked))
    assert post(hooked, event("message.finalized", message_id, "delivered"), key).status_code == 200
    [entry] = ledger(hooked)[count:]
    assert (entry.action, entry.target, entry.channel) == ("sent", message_id, None)


def test_other_events_are_acknowledged_and_ignored(hooked, key):
    count = len(ledger(hooked))
    answer = post(hooked, event("message.received", str(uuid.uuid4()), "webhook_delivered"), key)
    assert answer.status_code == 200 and answer.json() == {"ignored": "message.received"}
    assert len(ledger(hooked)) == count


def test_without_a_public_key_webhooks_are_not_accepted(hooked, key, monkeypatch):
    services = hooked.services
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"telnyx_public_key": None}))
    count = len(ledger(hooked))
    answer = post(hooked, event("message.sent", str(uuid.uuid4()), "sent"), key)
    assert answer.status_code == 503 and "TELNYX_PUBLIC_KEY" in answer.json()["error"]
    assert len(ledger(hooked)) == count


def test_a_late_sent_does_not_undo_delivered(hooked, key):
    """Telnyx does not promise order: `message.sent` may arrive after `message.finalized`."""
    send = scheduled_telnyx(hooked)
    assert post(hooked, event("message.finalized", send.target, "delivered"), key).status_code == 200
    assert post(hooked, event("message.sent", send.target, "sent"), key).status_code == 200
    assert "Delivered" in notice_text(hooked, send)
    with Session(hooked.services.engine) as session:
        assert session.get(TrackedSend, send.id).provider_status == "delivered"
    assert [e.action for e in ledger(hooked)][-2:] == ["sent", "sent"]  # both events are in the ledger



def test_an_event_the_bot_could_not_record_is_asked_for_again_and_then_recorded_once(hooked, key):
    """The database refuses the write (a real SQLite trigger, as a full disk would): the endpoint answers
    500 so Telnyx redelivers, and the redelivery is recorded; it is not dropped as a duplicate."""
    send = scheduled_telnyx(hooked)
    engine = hooked.services.engine
    assert engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER refuse_delivery BEFORE INSERT ON ledger_entries "
            "WHEN NEW.detail LIKE 'Telnyx message.finalized%' BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    count = len(ledger(hooked))
    body = event("message.finalized", send.target, "delivered", event_id=str(uuid.uuid4()))
    try:
        refused = post(hooked, body, key)
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TRIGGER refuse_delivery")
    assert refused.status_code == 500 and "secret" not in refused.text.lower()
    assert len(ledger(hooked)) == count, "nothing half-written"
    again = post(hooked, body, key)
    assert again.json() == {"recorded": True}
    assert [e.detail for e in ledger(hooked)[count:]] == ["Telnyx message.finalized: delivered"]
    assert post(hooked, body, key).json() == {"duplicate": True}

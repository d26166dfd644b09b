"""Intents left by a replica that died are settled by a live bot too, not only on the next start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from db.models import Intent, LedgerEntry
from db.store import new_id


def test_a_live_bot_settles_an_intent_a_dead_replica_left(make_bot, telnyx, monkeypatch):
    monkeypatch.setattr("bot.server.runtime.RECONCILE_EVERY", 0.1)
    bot = make_bot()  # its start-up pass found nothing
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2), status="cancelled")
    old = datetime.now(UTC) - timedelta(minutes=5)  # older than the periodic pass's 2-minute floor
    young = datetime.now(UTC)  # a call possibly still in flight on another replica: left alone
    with Session(bot.services.engine) as session:
        session.add(Intent(id=new_id(), operation="cancel", provider="telnyx", target=message_id,
                           actor="U0DEAD001", channel="C0OPS0001", started_at=old))
        session.add(Intent(id="young", operation="cancel", provider="telnyx", target=message_id,
                           actor="U0LIVE001", channel="C0OPS0001", started_at=young))
        session.commit()

    def settled() -> list[LedgerEntry]:
        with Session(bot.services.engine) as session:
            return list(session.exec(select(LedgerEntry)))

    entries = bot.slack.wait_for(settled, 5)
    assert [(e.actor, e.action, e.target) for e in entries] == [("system", "cancelled", message_id)]
    notice = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)
    assert "After a restart" in notice[0].text and "<@U0DEAD001>" in notice[0].text
    with Session(bot.services.engine) as session:
        assert session.get(Intent, "young").finished_at is None

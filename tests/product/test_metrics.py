"""GET /metrics over real HTTP, in Prometheus' text format: commands by verb and outcome, provider calls
by provider/operation/outcome with latency histograms, clicks, reminders, ack latency."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session, col, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import LedgerEntry

Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def world(world_factory):
    return world_factory(reminder_leads="2s")


def scrape(bot) -> tuple[dict[Sample, float], set[str], str]:
    response = bot.http.get(f"{bot.url}/metrics")
    assert response.status_code == 200
    values: dict[Sample, float] = {}
    families = set()
    for family in text_string_to_metric_families(response.text):
        families.add(family.name)
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values, families, response.headers["content-type"]


def delta(before: dict[Sample, float], after: dict[Sample, float], name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def matching(values: dict[Sample, float], name: str, **labels: str) -> dict[Sample, float]:
    return {k: v for k, v in values.items()
            if k[0] == name and all(dict(k[1]).get(key) == value for key, value in labels.items())}


def test_the_format_and_every_family_is_served(world):
    _, families, content_type = scrape(world.bot)
    assert content_type.startswith("text/plain; version=")  # the Prometheus text format
    assert {"smsops_commands", "smsops_clicks", "smsops_ack_seconds", "smsops_provider_calls",
            "smsops_provider_call_seconds", "smsops_reminders", "smsops_webhooks"} <= families


def test_commands_provider_calls_and_ack_latency_are_counted(world):
    bot, telnyx, solapi = world.bot, world.telnyx, world.solapi
    before, _, _ = scrape(bot)
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2))
    _, token = bot.command(f"cancel {message_id}")
    assert "Cancelled" in reply_text(bot.final_reply(token))
    pending = solapi.add_group(status="PENDING")
    _, token = bot.command(f"cancel {pending}")  # Solapi cancels only SCHEDULED groups: an error answer
    assert "'SCHEDULED' 상태의 그룹만 취소가 가능합니다." in reply_text(bot.final_reply(token))
    response, _ = bot.command("frobnicate now")  # a usage error, answered in the ack
    assert response.status_code == 200
    after, _, _ = scrape(bot)

    assert delta(before, after, "smsops_commands_total", command="cancel", outcome="ok") == 1
    assert delta(before, after, "smsops_commands_total", command="cancel", outcome="error") == 1
    assert delta(before, after, "smsops_commands_total", command="usage_error", outcome="error") == 1

    # provider calls: operation labels are path templates, not ids
    assert delta(before, after, "smsops_provider_calls_total", provider="telnyx",
                 operation="DELETE /messages/{id}", outcome="ok") == 1
    assert not [k for k in after if message_id in str(k)], "an id leaked into a label"
    solapi_errors = {dict(k[1])["outcome"] for k, v in matching(after, "smsops_provider_calls_total",
                                                                 provider="solapi").items()
                     if v > before.get(k, 0.0) and dict(k[1])["outcome"] != "ok"}
    assert solapi_errors, "Solapi's refusal is counted with its kind as the outcome"
    # latency histograms, per provider and operation
    count = delta(before, after, "smsops_provider_call_seconds_count", provider="telnyx",
                  operation="DELETE /messages/{id}")
    assert count == 1
    assert delta(before, after, "smsops_provider_call_seconds_bucket", provider="telnyx",
                 operation="DELETE /messages/{id}", le="+Inf") == 1
    assert delta(before, after, "smsops_provider_call_seconds_sum", provider="telnyx",
                 operation="DELETE /messages/{id}") > 0
    # ack latency: every command is acked, and fast
    assert delta(before, after, "smsops_ack_seconds_count", kind="command") == 3
    assert delta(before, after, "smsops_ack_seconds_bucket", kind="command", le="1.0") == 3


def test_clicks_and_reminders_are_counted(world):
    bot, slack = world.bot, world.slack
    before, _, _ = scrape(bot)
    _, token = bot.command("schedule solapi +821012345678 in 4s Reminder check")
    reply = reply_text(bot.final_reply(token))
    assert "Scheduled with Solapi" in reply
    # REMINDER_LEADS=2s: a reminder is posted about 2 seconds from now
    reminder = slack.wait_for(lambda: [m for m in slack.channel_messages("C0OPS0001")
                                       if (m.blocks and m.blocks[0]["text"]["text"].startswith("⏰"))], 10)[-1]
    cancel, _change_time = buttons(reminder.blocks)  # Cancel, then Change time
    _, token = bot.click(ActionId.CANCEL_BATCH, cancel["value"], message_ts=reminder.ts)
    bot.final_reply(token)
    time.sleep(0.2)
    after, _, _ = scrape(bot)
    assert delta(before, after, "smsops_reminders_total", outcome="posted") == 1
    assert sum(v - before.get(k, 0.0) for k, v in matching(after, "smsops_clicks_total", action="cancel").items()) == 1
    assert delta(before, after, "smsops_ack_seconds_count", kind="action") == 1


def test_an_answer_the_bot_could_not_use_is_counted_as_the_ledger_records_it(world):
    """JSON of the wrong shape is as unusable as an HTML error page: the ledger records the cancel as
    failed (garbage), and /metrics must not count the call `ok`."""
    bot, telnyx = world.bot, world.telnyx
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2))
    telnyx.server.faults.garbage('{"data": [1, 2, 3]}', status=200, method="DELETE", path_contains=message_id,
                                 times=1, headers={"content-type": "application/json"})
    before, _, _ = scrape(bot)
    _, token = bot.command(f"cancel {message_id}")
    assert "could not read" in reply_text(bot.final_reply(token))
    after, _, _ = scrape(bot)

    with Session(bot.services.engine) as session:
        entry = session.exec(select(LedgerEntry).where(LedgerEntry.target == message_id)
                             .order_by(col(LedgerEntry.seq).desc())).first()
    assert entry is not None and (entry.action, entry.outcome) == ("failed", "error")
    assert "garbage: unexpected answer" in entry.detail
    assert delta(before, after, "smsops_provider_calls_total", provider="telnyx",
                 operation="DELETE /messages/{id}", outcome="garbage") == 1
    assert delta(before, after, "smsops_provider_calls_total", provider="telnyx",
                 operation="DELETE /messages/{id}", outcome="ok") == 0
    assert delta(before, after, "smsops_commands_total", command="cancel", outcome="error") == 1

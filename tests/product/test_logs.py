"""Logs: one JSON line per event; a listener that fails answers with an apology carrying a request id,
and the error's log line carries the same id (and no secret)."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.infra.logs import JsonFormatter
from bot.sandbox.harness import reply_text
from bot.slack.ids import ActionId


@pytest.fixture
def world(world_factory):
    return world_factory()


@pytest.fixture
def log_lines(world) -> Iterator[io.StringIO]:
    """The bot's log as it would go to stderr: the bot's own formatter, with its own secrets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(world.bot.settings.secrets()))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def events(stream: io.StringIO) -> list[dict]:
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"at", "level", "logger", "event"} <= set(e) for e in parsed)
    return parsed


def apology_ref(text: str) -> str:
    found = re.search(r"Sorry, something went wrong on our side \(ref `([0-9a-f]{8,32})`\)", text)
    assert found, text
    return found.group(1)


def test_a_failing_command_apologises_with_the_request_id_that_the_log_carries(world, log_lines, monkeypatch):
    bot, telnyx = world.bot, world.telnyx
    secret = bot.settings.telnyx_api_key.get_secret_value()

    def broken(*args, **kwargs):
        raise RuntimeError(f"database is on fire (connected with {secret})")

    monkeypatch.setattr(bot.services.store, "find_send", broken)
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2))
    response, token = bot.command(f"cancel {message_id}")
    assert response.status_code == 200
    answer = reply_text(bot.final_reply(token))
    rid = apology_ref(answer)
    assert "on fire" not in answer and secret not in answer, "the apology does not leak the error"

    logged = events(log_lines)
    failures = [e for e in logged if e["event"] == "listener failed"]
    assert [(e["level"], e["request_id"]) for e in failures] == [("error", rid)]
    assert "RuntimeError: database is on fire" in failures[0]["exc"]
    assert secret not in log_lines.getvalue() and "[redacted]" in failures[0]["exc"]
    assert telnyx.status_of(message_id) == "scheduled", "nothing was done"


def test_a_failing_button_apologises_with_the_request_id_that_the_log_carries(world, log_lines, monkeypatch):
    bot = world.bot

    def broken(*args, **kwargs):
        raise RuntimeError("the batch table is gone")

    monkeypatch.setattr(bot.services.store, "batch", broken)
    _, token = bot.click(ActionId.CANCEL_BATCH, "0123456789abcdef0123456789abcdef")
    rid = apology_ref(reply_text(bot.final_reply(token)))
    failures = [e for e in events(log_lines) if e["event"] == "listener failed"]
    assert [(e["level"], e["request_id"]) for e in failures] == [("error", rid)]


def test_each_request_gets_its_own_id(world, log_lines, monkeypatch):
    bot = world.bot
    monkeypatch.setattr(bot.services.store, "find_send", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    refs = set()
    for _ in range(3):
        _, token = bot.command("status telnyx:8d2e4c6a-1b3f-4e5d-9a7b-0c1d2e3f4a5b")
        refs.add(apology_ref(reply_text(bot.final_reply(token))))
    assert len(refs) == 3
    assert {e["request_id"] for e in events(log_lines) if e["event"] == "listener failed"} == refs

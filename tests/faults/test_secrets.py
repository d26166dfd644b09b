"""Secrets never appear in what the bot writes. The check itself runs over the whole session
(tests/faults/secrets_plugin.py); these tests prove it is switched on, sees every kind of output, and
would catch a leak, and they drive the paths most likely to leak (provider auth failures, errors)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from bot.sandbox.harness import reply_text
from tests.faults.secrets_plugin import WATCH, Leak, SecretWatch


def test_the_watch_is_on_for_the_whole_session():
    root = logging.getLogger()
    assert any(type(h).__name__ == "_Records" for h in root.handlers)
    assert root.getEffectiveLevel() <= logging.INFO
    assert "xoxb-test-token" in WATCH.secrets


def test_the_watch_catches_a_leak_wherever_it_is():
    watch = SecretWatch()
    key = "KEY0190FAKE5EB1A6B4C1D2E3F4A5B6C7D8_smsopsFakeTelnyxKey"
    watch.scan("log:bot", f'{{"event": "calling", "auth": "Bearer {key}"}}')
    watch.scan("slack:chat.postMessage", "nothing to see")
    assert [(leak.where, leak.secret) for leak in watch.leaks] == [("log:bot", "KEY0…")]
    assert isinstance(watch.leaks[0], Leak) and "<SECRET>" in watch.leaks[0].snippet


def test_provider_auth_failures_and_errors_do_not_echo_credentials(make_bot, telnyx, solapi, highlevel, caplog):
    """Wrong credentials everywhere: the answers name the problem, never the key."""
    caplog.set_level(logging.DEBUG)
    bot = make_bot(telnyx_api_key="KEYWRONG0000000000000000000000000_x",
                   solapi_api_secret="WRONGSECRETWRONGSECRET0000000001",
                   highlevel_token="pit-wrong-0000-0000-0000-000000000000")
    scanned = dict(WATCH.scanned)
    ids = [telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2)),
           solapi.add_group(status="SCHEDULED"), "highlevel:" + highlevel.add_message()]
    for ref in ids:
        _, token = bot.command(f"cancel {ref}")
        text = reply_text(bot.final_reply(token))
        assert "credentials" in text or "Not cancelled" in text, text
    _, token = bot.command("providers")
    assert "configured, but" in reply_text(bot.final_reply(token))
    for secret in bot.settings.secrets():
        assert secret not in caplog.text
    assert WATCH.scanned.get("log", 0) > scanned.get("log", 0)
    assert WATCH.scanned.get("slack", 0) > scanned.get("slack", 0)

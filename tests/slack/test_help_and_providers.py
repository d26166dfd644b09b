"""/sms help and /sms providers."""

from __future__ import annotations

from tests.support.harness import reply_text


def test_help_lists_every_command_with_an_example(bot):
    response, _ = bot.command("help")
    body = response.json()
    assert body["response_type"] == "ephemeral"
    text = reply_text(body)
    for verb in ("schedule", "track", "send", "cancel", "delete", "status", "list", "audit", "providers"):
        assert f"/sms {verb}" in text
    assert text.count("e.g.") >= 9


def test_providers_says_which_answer(make_bot, telnyx, solapi):
    bot = make_bot(highlevel_token=None)
    solapi.server.faults.status(503, '{"errorCode":"ServiceUnavailable","errorMessage":"점검 중"}')
    _, token = bot.command("providers")
    text = reply_text(bot.final_reply(token, timeout=20))
    assert "Telnyx: configured and answering" in text
    assert "Solapi: configured, but" in text and "unavailable" in text
    assert "HighLevel: not configured (set HIGHLEVEL_TOKEN)" in text

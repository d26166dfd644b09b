"""/sms help and /sms providers."""

from __future__ import annotations

from bot.sandbox.harness import reply_text


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


def test_providers_includes_twilio_and_names_its_settings_when_unset(make_bot, twilio):
    configured = make_bot()
    _, token = configured.command("providers")
    assert "Twilio: configured and answering" in reply_text(configured.final_reply(token, timeout=20))
    assert twilio.server.requests_to("GET", "/Messages/SM")  # the ping is an authenticated fetch
    # stopped first: on the same database its inbox workers could take (and answer) the next bot's request
    configured.stop()

    unset = make_bot(twilio_account_sid=None)
    _, token = unset.command("providers")
    assert ("Twilio: not configured (set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN, or with TWILIO_API_KEY and "
            "TWILIO_API_SECRET)") in reply_text(unset.final_reply(token, timeout=20))

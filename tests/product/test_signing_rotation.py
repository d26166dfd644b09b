"""Rotating the Slack signing secret without refusing Slack: SLACK_SIGNING_SECRET_PREVIOUS is accepted
next to SLACK_SIGNING_SECRET, over signed HTTP as Slack sends it."""

from __future__ import annotations

from urllib.parse import urlencode

from bot.sandbox.harness import SIGNING_SECRET, reply_text, sign
from bot.sandbox.slack import TEAM_ID

NEW_SECRET = "rotated-signing-secret-7d41"


def help_command(bot, secret: str):
    body = urlencode({"team_id": TEAM_ID, "channel_id": "C0OPS0001", "user_id": "U0ALICE01", "command": "/sms",
                      "text": "help", "response_url": bot.slack.response_url("rotation"),
                      "trigger_id": f"1.{secret[-4:]}.x"})
    return bot.post_signed(body, headers=sign(body, secret=secret))


def test_during_a_rotation_both_secrets_are_accepted_and_no_other(make_bot):
    bot = make_bot(slack_signing_secret=NEW_SECRET, slack_signing_secret_previous=SIGNING_SECRET)
    for secret in (NEW_SECRET, SIGNING_SECRET):
        response = help_command(bot, secret)
        assert response.status_code == 200
        assert "/sms schedule" in reply_text(response.json())
    forged = help_command(bot, "some-other-secret-0000")
    assert forged.status_code == 401


def test_without_the_previous_secret_the_old_one_is_refused(make_bot):
    bot = make_bot(slack_signing_secret=NEW_SECRET)
    assert help_command(bot, SIGNING_SECRET).status_code == 401
    assert help_command(bot, NEW_SECRET).status_code == 200

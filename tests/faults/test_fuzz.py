"""`/sms` text fuzzed with hypothesis: unicode, control characters, huge strings, quotes, SQL and Slack
markup. The parser never crashes: every text is a valid command or a usage answer Slack will accept;
and over real HTTP the bot always acks with 200 and ends with an answer that is not an apology."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain import commands
from bot.domain.results import Reply, Tone
from bot.operations.dispatch import progress_text
from bot.sandbox.harness import reply_text as read_reply
from bot.slack.blocks import help_blocks, reply_blocks, reply_text

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

VERBS = ["help", "?", "providers", "schedule", "track", "send", "cancel", "delete", "status", "list", "audit",
         "SCHEDULE", "Cancel", "cancel all mine", "cancel all mine since", "audit since", "audit limit"]
WORDS = [
    "telnyx", "solapi", "coolsms", "highlevel", "at", "in", "since", "limit", "mine", "all", "2h", "45m", "0s",
    "9999999d", "2026-11-24T09:00+09:00", "2026-11-24T09:00", "2020-01-01T00:00Z", "+15551234567",
    "+821012345678", "+1", "010-1234-5678", "G4V20181005162502HEA0ZB9AQOUMSE1", "M4V20181005162502HEA0ZB9AQOUMSE1",
    "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e", "telnyx:182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e", "solapi:", ":",
    "highlevel:cT9kQ2mN4pR6sV8xZ1aB", "<@U012AB3CD>", "<@U012AB3CD|alice>", "@alice", "<!channel>", "<!here>",
    "<#C0123|ops>", "<https://evil.example|click>", "*bold*", "`code`", "```", "'; DROP TABLE ledger_entries; --",
    "\" OR 1=1 --", "' OR ''='", "%s", "{0}", "${jndi:ldap://x}", "\\", "\u202e", "\u200b", "\ufeff", "🙂",
    "안녕하세요", "مرحبا", "\x00", "\x07", "\x1b[31m", "\r", "\n", "\t", ",", ",,", "1000", "1001", "-1", "1e9",
]

markup = st.sampled_from(WORDS)
text_of_words = st.lists(st.one_of(markup, st.sampled_from(VERBS), st.text(max_size=12)), max_size=12).map(" ".join)
grammar = st.tuples(st.sampled_from(VERBS), text_of_words).map(lambda p: f"{p[0]} {p[1]}")
huge = st.tuples(st.sampled_from(["", "schedule telnyx +15551234567 in 2h ", "cancel ", "audit "]),
                 st.sampled_from(["x", "가", "🙂", "+15551234567,", "a" * 7 + ","]),
                 st.integers(min_value=1_000, max_value=120_000)).map(lambda p: p[0] + p[1] * (p[2] // len(p[1])))
anything = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
FUZZ = st.one_of(grammar, grammar, anything, text_of_words, huge)


def check_answer(text: str) -> str:
    """The listener's own path from text to what Slack gets; returns 'usage', 'help' or the command."""
    try:
        parsed = commands.parse(text, NOW)
    except commands.UsageError as error:
        usage = f"\nUsage: `{error.usage}`" if error.usage else "\nType `/sms help` for every command."
        reply = Reply(Tone.ERROR, f"{error.message}.{usage}")
        blocks = reply_blocks(reply)
        _slack_accepts(reply_text(reply), blocks)
        assert len(error.message) < 400, "a usage answer quotes at most a little of what was typed"
        return "usage"
    assert isinstance(parsed, commands.Command)  # type: ignore[arg-type]
    if isinstance(parsed, commands.Help):
        _slack_accepts("/sms commands", help_blocks(parsed.verb))
        return "help"
    _slack_accepts(progress_text(parsed), [])
    if isinstance(parsed, commands.Schedule):
        assert parsed.send_at > NOW and 0 < len(parsed.text) <= commands.MAX_TEXT and parsed.to
    return type(parsed).__name__


def _slack_accepts(text: str, blocks: list[dict[str, Any]]) -> None:
    json.dumps(blocks)
    assert 0 < len(text) <= 4000, len(text)
    assert len(blocks) <= 50
    for block in blocks:
        inner = block.get("text")
        if isinstance(inner, dict):
            assert len(inner.get("text", "")) <= 3000
        for element in block.get("elements") or []:
            if isinstance(element.get("text"), dict):
                assert len(element["text"].get("text", "")) <= 3000


@settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(FUZZ)
def test_ten_thousand_texts_are_a_command_or_a_usage_answer(text: str) -> None:
    check_answer(text)


def test_the_fuzzer_reaches_every_kind_of_answer() -> None:
    """The generator is not just making noise: it hits valid commands of many kinds too."""
    seen: set[str] = set()

    @settings(max_examples=1500, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(FUZZ)
    def collect(text: str) -> None:
        seen.add(check_answer(text))

    collect()
    assert {"usage", "help", "Cancel", "Audit", "ListSends"} <= seen, seen


@settings(max_examples=400, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(st.one_of(grammar, anything, text_of_words))
def test_over_http_the_bot_always_acks_and_answers(bot: Any, text: str) -> None:
    response, token = bot.command(text)
    assert response.status_code == 200, (text, response.status_code)
    ack = response.json()
    assert ack.get("response_type") == "ephemeral" and ack.get("text")
    if str(ack["text"]).startswith("⏳"):  # a valid command: its answer follows through response_url
        final = read_reply(bot.final_reply(token, timeout=15))
        assert "something went wrong on our side" not in final, (text, final)
    else:
        assert "something went wrong on our side" not in read_reply(ack), (text, ack)


def test_a_command_mentioning_payload_is_not_mistaken_for_a_click(bot: Any) -> None:
    """Found by the HTTP fuzz: slack-bolt reads any form body containing "payload" as an interaction."""
    for text in ("help payload", "status payload", "audit payload"):
        response, token = bot.command(text)
        assert response.status_code == 200, text
        ack = response.json()
        if str(ack["text"]).startswith("⏳"):
            assert "something went wrong" not in read_reply(bot.final_reply(token))

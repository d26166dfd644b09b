"""The approval rules file: what it says is what applies, and a mistake names its line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.approval_rules import PlannedSend, PolicyFileError, parse, satisfied

EXAMPLE = """\
[costs]
telnyx = 0.004

[[rule]]
name = "large sends"
recipients_over = 100
approvers = ["@sms-leads"]
quorum = 2

[[rule]]
name = "night sends on Telnyx"
providers = ["telnyx"]
hours = "20:00-08:00"
tz = "America/New_York"
approvers = ["U012ABCDEF", "U034GHIJKL"]

[[rule]]
name = "expensive"
cost_over = 10
approvers = ["U0CFO00001"]
"""

NOON_NY = datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
NIGHT_NY = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # 22:00 in New York


def plan(recipients: int = 1, provider: str = "telnyx", at: datetime = NOON_NY, segments: int = 1) -> PlannedSend:
    return PlannedSend("schedule", provider, recipients, segments, at)


def test_rules_match_by_count_provider_time_of_day_and_cost() -> None:
    policy = parse(EXAMPLE)
    assert [r.name for r in policy.required(plan(1))] == []
    assert [r.name for r in policy.required(plan(101, "solapi"))] == ["large sends"]
    assert [r.name for r in policy.required(plan(1, at=NIGHT_NY))] == ["night sends on Telnyx"]
    assert [r.name for r in policy.required(plan(1, "solapi", at=NIGHT_NY))] == []
    # 3,000 recipients × 1 segment × 0.004 = 12 > 10
    assert [r.name for r in policy.required(plan(3000))] == ["large sends", "expensive"]


def test_a_quorum_counts_distinct_group_members_never_the_requester() -> None:
    rule = parse(EXAMPLE).rules[0]
    members = {"@sms-leads": frozenset({"U0LEAD0001", "U0LEAD0002", "U0ALICE01"})}
    assert not satisfied(rule, ["U0LEAD0001", "U0LEAD0001"], "U0ALICE01", members)  # one person twice
    assert not satisfied(rule, ["U0LEAD0001", "U0ALICE01"], "U0ALICE01", members)  # the requester
    assert not satisfied(rule, ["U0LEAD0001", "U0OUTSIDE1"], "U0ALICE01", members)  # not in the group
    assert satisfied(rule, ["U0LEAD0001", "U0LEAD0002"], "U0ALICE01", members)
    # membership is judged as it is now: someone who left the group no longer counts
    assert not satisfied(rule, ["U0LEAD0001", "U0LEAD0002"], "U0ALICE01", {"@sms-leads": frozenset({"U0LEAD0001"})})


def test_the_rules_read_as_words() -> None:
    lines = parse(EXAMPLE).describe()
    assert lines[0] == ("“large sends”: a schedule and send to more than 100 recipients needs 2 approval(s) "
                        "from @sms-leads (not the requester)")
    assert "between 20:00 and 08:00 America/New_York" in lines[1] and "<@U012ABCDEF>" in lines[1]


@pytest.mark.parametrize(("text", "line", "says"), [
    ("[[rule]]\nname = 'x'\napprovers = ['U012ABCDEF']\nquorom = 2\n", 4, "unknown key `quorom`"),
    ("[[rule]]\nname = 'x'\napprovers = ['bob']\n", 3, "neither a Slack user id"),
    ("[[rule]]\nname = 'x'\n", 1, "needs `approvers`"),
    ("[[rule]]\nname = 'x'\napprovers = ['U012ABCDEF']\nquorum = 2\n", 4, "more than the 1 approver"),
    ("[[rule]]\nname = 'x'\napprovers = ['U012ABCDEF']\nhours = '8-20'\n", 4, "range of times"),
    ("[[rule]]\nname = 'x'\napprovers = ['U012ABCDEF']\ntz = 'Mars/Base'\n", 4, "not an IANA time zone"),
    ("[[rule]]\nname = 'x'\napprovers = ['U012ABCDEF']\nproviders = ['pigeon']\n", 4, "`providers` must be"),
    ("[costs]\npigeon = 1\n", 2, "not a provider"),
    ("[[rule]]\nname = = 'x'\n", 2, "not valid TOML"),
    ("[rules]\n", 1, "unknown section"),
])
def test_a_mistake_names_the_line_and_the_reason(text: str, line: int, says: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        parse(text, "policy.toml")
    assert caught.value.line == line, str(caught.value)
    assert says in caught.value.reason
    assert str(caught.value).startswith(f"policy.toml, line {line}: ")

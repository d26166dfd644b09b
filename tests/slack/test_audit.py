"""/sms audit in Slack: one id's story, a person's actions, filters, paging, time zones, who may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.slack.ids import ActionId
from db.ledger import EntryDraft
from db.models import LedgerEntry
from tests.support.harness import buttons, reply_text


def seed(bot, drafts):
    bot.services.store.record(*drafts)


def test_audit_of_an_id_tells_its_story_oldest_first(bot, telnyx):
    message_id = telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=3))
    _, t = bot.command(f"track telnyx {message_id}")
    bot.final_reply(t)
    _, t = bot.command(f"cancel {message_id}", user="U0BOB0001")
    bot.final_reply(t)
    _, t = bot.command(f"audit {message_id}")
    text = reply_text(bot.final_reply(t))
    assert "oldest first" in text
    assert text.index("*tracked*") < text.index("*cancelled*")
    assert "<@U0BOB0001>" in text and "<@U0ALICE01>" in text


def test_audit_filters_combine_and_page_with_more(make_bot, slack):
    slack.user_tz["U0ALICE01"] = "Asia/Seoul"
    bot = make_bot()
    drafts = []
    for n in range(30):
        drafts.append(EntryDraft(actor="U0BOB0001", action="cancelled", outcome="ok", provider="telnyx",
                                 target=f"00000000-0000-4000-8000-{n:012d}", channel="C0OPS0001"))
        drafts.append(EntryDraft(actor="U0CAROL01", action="cancelled", outcome="ok", provider="solapi",
                                 target=f"G4V20261123000000ABCDEFGHIJ{n:04d}Z", channel="C0OPS0001"))
    seed(bot, drafts)
    _, t = bot.command("audit <@U0BOB0001|bob> telnyx since 7d limit 10")
    reply = bot.final_reply(t)
    text = reply_text(reply)
    assert text.count("<@U0BOB0001>") == 10 and "U0CAROL01" not in text
    assert "Asia/Seoul" in text and "KST" in text  # the reader's zone, with UTC beside it
    assert "000000000029" in text  # newest first
    [more] = buttons(reply["blocks"])
    assert more["action_id"] == ActionId.AUDIT_MORE
    _, page = bot.click(more["action_id"], more["value"], is_ephemeral=True)
    second = bot.final_reply(page)
    second_text = reply_text(second)
    assert "000000000019" in second_text and "000000000029" not in second_text
    assert second.get("replace_original") is True


def test_bad_audit_filters_get_clear_answers(bot):
    for command, expected in {
        "audit since yesterday-ish": "is not a time",
        "audit limit 0": "from 1 to 1000",
        "audit limit 1000000000": "from 1 to 1000",
        "audit <@nobody>": "not a Slack user",
    }.items():
        response, _ = bot.command(command)
        assert expected in response.json()["text"], (command, response.json())


def test_hostile_strings_find_nothing_and_break_nothing(bot):
    seed(bot, [EntryDraft(actor="U0BOB0001", action="cancelled", outcome="ok", provider="telnyx",
                          target="00000000-0000-4000-8000-000000000001")])
    for hostile in ["solapi:G4V' OR '1'='1", "x;DROP_TABLE", "%25", "highlevel:aaaaaaaaaaaaaaaaaaa_"]:
        response, token = bot.command(f"audit {hostile}")
        text = response.json().get("text", "")
        if "⏳" in text:
            text = reply_text(bot.final_reply(token))
        assert "No ledger entries match" in text or "not" in text, (hostile, text)
    assert bot.services.ledger.count() == 1
    assert bot.services.ledger.verify().ok


def test_members_who_are_not_auditors_see_only_their_own(make_bot):
    bot = make_bot(sms_admins="U0ADMIN01", sms_auditors="U0AUDIT01")
    seed(bot, [
        EntryDraft(actor="U0BOB0001", action="cancelled", outcome="ok", provider="telnyx", target="t-bob"),
        EntryDraft(actor="U0CAROL01", action="cancelled", outcome="ok", provider="telnyx", target="t-carol"),
    ])
    _, t = bot.command("audit", user="U0BOB0001")
    own = reply_text(bot.final_reply(t))
    assert "t-bob" in own and "t-carol" not in own
    _, t = bot.command("audit <@U0CAROL01>", user="U0BOB0001")
    assert "only your own" in reply_text(bot.final_reply(t))
    _, t = bot.command("audit", user="U0AUDIT01")
    everyone = reply_text(bot.final_reply(t))
    assert "t-bob" in everyone and "t-carol" in everyone
    with Session(bot.services.engine) as session:
        refused = list(session.exec(select(LedgerEntry).where(LedgerEntry.action == "refused")))
    assert [(e.actor, e.outcome) for e in refused] == [("U0BOB0001", "refused")]

"""/sms audit in Slack: one id's story, a person's actions, filters, paging, time zones, who may read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.ledger import EntryDraft, Ledger
from db.models import LedgerEntry


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
    ledger = Ledger(bot.services.engine)
    assert ledger.count() == 1
    assert ledger.verify().ok


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


def test_a_long_history_of_one_id_pages_forward_with_more(bot):
    # A busy id answers one page at a time (oldest first), and More carries on where it stopped,
    # through to the last entry, without repeating one or mixing in another id's.
    target = "00000000-0000-4000-8000-000000000777"
    drafts = []
    for n in range(45):
        drafts.append(EntryDraft(actor="U0BOB0001", action="reminded", outcome="ok", provider="telnyx",
                                 target=target, detail=f"step-{n:02d}"))
        drafts.append(EntryDraft(actor="U0BOB0001", action="reminded", outcome="ok", provider="telnyx",
                                 target="00000000-0000-4000-8000-000000000778", detail=f"other-{n:02d}"))
    seed(bot, drafts)
    _, t = bot.command(f"audit telnyx:{target}")
    reply = bot.final_reply(t)
    seen = []
    while True:
        text = reply_text(reply)
        assert "oldest first" in text and "other-" not in text
        seen.extend(int(part[5:7]) for part in text.split() if part.startswith("step-"))
        more = buttons(reply.get("blocks") or [])
        if not more:
            break
        _, page = bot.click(more[0]["action_id"], more[0]["value"], is_ephemeral=True)
        reply = bot.final_reply(page)
    assert seen == list(range(45))  # 20 + 20 + 5, in order, each once


def test_more_on_an_id_keeps_a_member_to_their_own_entries(make_bot):
    # The button's value comes back from the clicker: a member who edits it to read someone
    # else's entries is refused, as when they type the command.
    import json

    bot = make_bot(sms_auditors="U0AUDIT01")
    target = "00000000-0000-4000-8000-000000000999"
    seed(bot, [EntryDraft(actor=actor, action="reminded", outcome="ok", provider="telnyx", target=target,
                          detail=f"{actor}-{n:02d}") for n in range(25) for actor in ("U0BOB0001", "U0CAROL01")])
    _, t = bot.command(f"audit {target}", user="U0BOB0001")
    reply = bot.final_reply(t)
    assert "U0CAROL01-" not in reply_text(reply)
    [more] = buttons(reply["blocks"])
    _, page = bot.click(more["action_id"], more["value"], user="U0BOB0001", is_ephemeral=True)
    second = reply_text(bot.final_reply(page))
    assert "U0BOB0001-20" in second and "U0BOB0001-24" in second and "U0CAROL01-" not in second
    forged = json.dumps({**json.loads(more["value"]), "a": "U0CAROL01"})
    _, page = bot.click(more["action_id"], forged, user="U0BOB0001", is_ephemeral=True)
    assert "only your own" in reply_text(bot.final_reply(page))

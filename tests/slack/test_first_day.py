"""Issue 18, the Slack side of a first day: what reaches the phone is what was typed, help that works
when pasted, one state for an approval everywhere, bulk cancels that confirm like buttons do."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import Approval, LedgerEntry, SlackName


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def iso_in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).replace(microsecond=0).isoformat()


# --- 1. what reaches the phone is what was typed ---------------------------------------------------
SLACK_TYPED = ("Tom &amp; Jerry &lt;3 <!channel> ask <@U0BOB0001|bob> or <mailto:a@b.io|a@b.io>, "
               "see <https://x.io/a?b=1&amp;c=2|x.io>")
PHONE_READS = "Tom & Jerry <3 @channel ask @bob or a@b.io, see https://x.io/a?b=1&c=2"


def test_slack_escapes_and_tokens_reach_the_phone_as_typed_and_the_notice_pings_nobody(bot, telnyx):
    _, token = bot.command(f"schedule telnyx +15551230001 at {iso_in(timedelta(hours=3))} {SLACK_TYPED}")
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    [message] = telnyx.messages.values()
    assert message["text"] == PHONE_READS
    notice = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 10)[-1]
    shown = reply_text({"blocks": notice.blocks})
    assert "<!channel>" not in shown and "<@U0BOB0001" not in shown  # no live mention in the channel
    assert "Tom &amp; Jerry &lt;3 @channel" in shown  # Slack renders this as the SMS reads
    # what `/sms list` quotes is inert too
    _, listed = bot.command("list mine")
    assert "<!channel>" not in reply_text(bot.final_reply(listed))


# --- 7. help that works when pasted --------------------------------------------------------------
def test_help_examples_paste_and_work(bot, telnyx):
    response, _ = bot.command("help")
    text = reply_text(response.json())
    schedule = re.search(r"e\.g\. `/sms (schedule [^`]+)`", text)
    assert schedule is not None
    _, token = bot.command(schedule.group(1))
    assert "Scheduled with" in reply_text(bot.final_reply(token))
    assert len(telnyx.messages) == 2  # the example has two recipients
    audit = re.search(r"e\.g\. `/sms (audit [^`]+)`", text)
    assert audit is not None
    _, token = bot.command(audit.group(1).replace("<@U012AB3CD>", "<@U0ALICE01>"))
    assert "ledger entr" in reply_text(bot.final_reply(token))
    assert "since <7d|date>" in text and "`7d`" in text


def test_since_hint_says_what_since_takes_and_times_have_no_microseconds(bot):
    response, _ = bot.command("audit since yesterday")
    text = reply_text(response.json())
    assert "`7d`" in text and "a date" in text
    response, _ = bot.command("schedule telnyx +15551230001 at 2020-01-01T09:00:00.123456Z hi")
    text = reply_text(response.json())
    assert "2020-01-01 09:00:00 UTC is in the past" in text and ".123456" not in text


def test_each_slack_token_reads_as_slack_showed_it():
    from bot.domain.slack_text import unescape

    assert unescape("<@U1|bob> <@U1> <#C1|ops> <!here> <!everyone> <!subteam^S1|@oncall>") == \
        "@bob @U1 #ops @here @everyone @oncall"
    assert unescape("<!date^1700000000^{date}|Nov 14> <tel:+15551230001|call us>") == "Nov 14 call us"
    assert unescape("&lt;@U1&gt; stays typed; a &amp;amp; b") == "<@U1> stays typed; a &amp; b"


# --- 3. one state, everywhere --------------------------------------------------------------------
def approvals(bot) -> list[Approval]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(Approval)))


def test_deleting_a_group_closes_its_approval_card_and_a_later_approve_calls_nobody(bot, solapi):
    group_id = solapi.add_group(status="PENDING", recipients=["01011112222"])
    _, token = bot.command(f"send {group_id}")
    assert "Asked for approval" in reply_text(bot.final_reply(token))
    card = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)[-1]
    approve = {b["action_id"]: b for b in buttons(card.blocks)}[ActionId.APPROVE]
    _, token = bot.command(f"delete {group_id}", user="U0BOB0001")
    assert "Deleted Solapi group" in reply_text(bot.final_reply(token))
    updated = bot.slack.wait_for(lambda: card.history and card, 5)
    assert buttons(updated.blocks) == [] and "Deleted by <@U0BOB0001>" in reply_text({"blocks": updated.blocks})
    assert [a.state for a in approvals(bot)] == ["closed"]
    before = len(solapi.requests)
    _, click = bot.click(approve["action_id"], approve["value"], user="U0CAROL01", message_ts=card.ts)
    answer = reply_text(bot.final_reply(click))
    assert "already deleted by <@U0BOB0001>" in answer and "Nothing was done" in answer
    assert len(solapi.requests) == before  # answered from the ledger: no provider call at all
    assert solapi.calls("POST", "/send") == 0
    assert [e.action for e in ledger(bot)] == ["approval_requested", "deleted"]


def test_an_expired_request_is_closed_when_asked_again(make_bot, solapi):
    from bot.domain.clock import FrozenClock

    clock = FrozenClock(datetime.now(UTC))
    bot = make_bot(clock=clock, approval_ttl="1h")
    group_id = solapi.add_group(status="PENDING", recipients=["01011112222"])
    _, token = bot.command(f"send {group_id}")
    assert "Asked for approval" in reply_text(bot.final_reply(token))
    first = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)[-1]
    clock.advance(timedelta(hours=2))
    _, token = bot.command(f"send {group_id}")
    assert "Asked for approval" in reply_text(bot.final_reply(token))  # not "already open"
    updated = bot.slack.wait_for(lambda: first.history and first, 5)
    assert buttons(updated.blocks) == [] and "Expired" in reply_text({"blocks": updated.blocks})
    assert sorted(a.state for a in approvals(bot)) == ["expired", "pending"]


# --- 8. bulk actions confirm like buttons do -----------------------------------------------------
def test_cancel_all_mine_lists_and_asks_before_cancelling(bot, telnyx):
    ids = [telnyx.add_message(send_at=datetime.now(UTC) + timedelta(hours=2)) for _ in range(2)]
    for message_id in ids:
        _, token = bot.command(f"track telnyx {message_id}")
        bot.final_reply(token)
    _, token = bot.command("cancel all mine")
    listing = bot.final_reply(token)
    text = reply_text(listing)
    assert "This would cancel 2" in text and all(i in text for i in ids)
    [button] = buttons(listing["blocks"])
    assert button["action_id"] == ActionId.CANCEL_MINE and button["confirm"]["confirm"]["text"] == "Cancel them"
    assert telnyx.server.requests_to("DELETE") == []  # nothing before the click
    assert {telnyx.status_of(i) for i in ids} == {"scheduled"}
    _, click = bot.click(button["action_id"], button["value"], is_ephemeral=True)
    assert "Cancelled 2 of 2" in reply_text(bot.final_reply(click))
    assert {telnyx.status_of(i) for i in ids} == {"cancelled"}


# --- 6. audit that reads like the channel --------------------------------------------------------
def test_cancel_of_an_unknown_telnyx_id_is_recorded(bot, telnyx):
    _, token = bot.command("cancel telnyx:182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26e")
    assert "does not know that id" in reply_text(bot.final_reply(token))
    [entry] = ledger(bot)
    assert (entry.action, entry.outcome, entry.provider) == ("failed", "error", "telnyx")
    assert "404" in entry.detail


def test_audit_names_people_and_says_actions_in_words(make_bot, solapi, capsys, pg_url):
    from bot.cli.audit import audit_main

    bot = make_bot(database_url=pg_url)  # the CLI reads while the bot runs, as on a server
    group_id = solapi.add_group(status="PENDING", recipients=["01011112222"])
    _, token = bot.command(f"send {group_id}", user="U0BOB0001", user_name="bob")
    assert "Asked for approval" in reply_text(bot.final_reply(token))
    _, token = bot.command("audit", user="U0BOB0001", user_name="bob")
    answer = reply_text(bot.final_reply(token))
    assert "*asked for approval*" in answer and "approval_requested" not in answer
    url = str(bot.services.engine.url.render_as_string(hide_password=False))
    bot.slack.wait_for(lambda: bot.services.store.session().get(SlackName, "U0BOB0001"), 5)
    code = audit_main(["--actor", "@bob"], url)
    table, err = capsys.readouterr()
    assert code == 0, err
    assert "@bob" in table and "asked for approval" in table and "U0BOB0001" not in table
    assert audit_main(["--actor", "@bob", "--json"], url) == 0
    assert '"action": "approval_requested"' in capsys.readouterr().out  # the contract's values stay
    assert audit_main(["--actor", "@nobody"], url) == 2
    assert "nobody called @nobody" in capsys.readouterr().err

"""/sms send → an approval request → one Approve click sends the Solapi group exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from bot.domain.clock import FrozenClock
from bot.sandbox.harness import buttons, reply_text
from bot.slack.ids import ActionId
from db.models import LedgerEntry


def ledger(bot) -> list[LedgerEntry]:
    with Session(bot.services.engine) as session:
        return list(session.exec(select(LedgerEntry).order_by(LedgerEntry.seq)))


def request_approval(bot, solapi, user="U0ALICE01"):
    group_id = solapi.add_group(status="PENDING", recipients=["01011112222", "01033334444"])
    _, token = bot.command(f"send {group_id}", user=user)
    assert "Asked for approval" in reply_text(bot.final_reply(token))
    card = bot.slack.wait_for(lambda: bot.slack.channel_messages("C0OPS0001"), 5)[-1]
    named = {b["action_id"]: b for b in buttons(card.blocks)}
    assert set(named) == {ActionId.APPROVE, ActionId.REJECT}
    assert all("confirm" in b for b in named.values())
    return group_id, card, named


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_twenty_concurrent_approvals_send_once(make_bot, solapi, database, pg_url):
    bot = make_bot(**({"database_url": pg_url} if database == "postgresql" else {}))
    group_id, card, named = request_approval(bot, solapi)
    approve = named[ActionId.APPROVE]
    users = [f"U0APPR{n:03d}" for n in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda u: bot.click(approve["action_id"], approve["value"], user=u,
                                                    message_ts=card.ts), users))
    assert all(r.status_code == 200 for r, _ in results)
    answers = [reply_text(bot.final_reply(token, timeout=20)) for _, token in results]
    assert sum("Sent Solapi" in a for a in answers) == 1
    assert sum("Nothing more was done" in a for a in answers) == 19
    assert solapi.calls("POST", "/send") == 1
    assert solapi.group(group_id)["status"] in ("SENDING", "COMPLETE")
    actions = [e.action for e in ledger(bot)]
    assert actions == ["approval_requested", "approved", "sent"]
    updated = bot.slack.wait_for(lambda: card.history and card, 5)
    assert buttons(updated.blocks) == [] and "Approved by" in reply_text({"blocks": updated.blocks})


def test_second_approver_is_required_when_configured(make_bot, solapi):
    bot = make_bot(sms_require_second_approver=True)
    _group_id, _card, named = request_approval(bot, solapi)
    approve = named[ActionId.APPROVE]
    _, own = bot.click(approve["action_id"], approve["value"], user="U0ALICE01")
    assert "second person must approve" in reply_text(bot.final_reply(own))
    assert solapi.calls("POST", "/send") == 0
    assert ledger(bot)[-1].action == "refused"
    _, other = bot.click(approve["action_id"], approve["value"], user="U0BOB0001")
    assert "Sent Solapi" in reply_text(bot.final_reply(other))


def test_cancelling_the_request_sends_nothing_and_later_approve_says_so(bot, solapi):
    group_id, _card, named = request_approval(bot, solapi)
    _, c = bot.click(named[ActionId.REJECT]["action_id"], named[ActionId.REJECT]["value"])
    assert "nothing was sent" in reply_text(bot.final_reply(c))
    _, a = bot.click(named[ActionId.APPROVE]["action_id"], named[ActionId.APPROVE]["value"], user="U0BOB0001")
    assert "Already cancelled by <@U0ALICE01>" in reply_text(bot.final_reply(a))
    assert solapi.calls("POST", "/send") == 0
    assert solapi.group(group_id)["status"] == "PENDING"


def test_requests_expire(make_bot, solapi):
    clock = FrozenClock(datetime.now(UTC))
    bot = make_bot(clock=clock, approval_ttl="1h")
    _, _card, named = request_approval(bot, solapi)
    clock.advance(timedelta(hours=2))
    _, a = bot.click(named[ActionId.APPROVE]["action_id"], named[ActionId.APPROVE]["value"])
    assert "expired" in reply_text(bot.final_reply(a))
    assert solapi.calls("POST", "/send") == 0


def test_send_refuses_a_group_that_is_not_pending(bot, solapi):
    group_id = solapi.add_group(status="SCHEDULED")
    _, token = bot.command(f"send {group_id}")
    assert "only a PENDING group can be sent" in reply_text(bot.final_reply(token))


def test_delete_pending_group_and_refuse_scheduled(bot, solapi):
    pending = solapi.add_group(status="PENDING")
    _, token = bot.command(f"delete {pending}")
    assert "Deleted Solapi group" in reply_text(bot.final_reply(token))
    assert solapi.group(pending)["status"] == "DELETED"
    scheduled = solapi.add_group(status="SCHEDULED")
    _, token = bot.command(f"delete {scheduled}")
    text = reply_text(bot.final_reply(token))
    assert "NotOperationalStatus" in text and "must be cancelled instead" in text
    assert [(e.action, e.outcome) for e in ledger(bot)] == [("deleted", "ok"), ("failed", "error")]


def test_with_a_rules_file_a_solapi_send_needs_the_rules_quorum(make_bot, solapi, tmp_path):
    """SMS_POLICY_FILE applies to `/sms send` too: a matching rule's quorum replaces the single approval."""
    rules = tmp_path / "sms-policy.toml"
    rules.write_text('[[rule]]\nname = "solapi groups"\nproviders = ["solapi"]\nactions = ["send"]\n'
                     'approvers = ["@sms-leads"]\nquorum = 2\n', encoding="utf-8")
    bot = make_bot(sms_policy_file=str(rules))
    bot.slack.set_usergroup("sms-leads", ["U0BOB0001", "U0CAROL01"])
    group_id, card, named = request_approval(bot, solapi)
    assert "“solapi groups” needs 2 approval(s) from @sms-leads" in reply_text({"blocks": card.blocks})
    approve = named[ActionId.APPROVE]

    def click(user):
        _, token = bot.click(approve["action_id"], approve["value"], user=user, message_ts=card.ts)
        return reply_text(bot.final_reply(token))

    assert "is not among its approvers" in click("U0ERIN001")
    assert "Still needed" in click("U0BOB0001") and "1 of 2" in click("U0BOB0001")
    assert solapi.calls("POST", "/send") == 0
    assert "Sent Solapi" in click("U0CAROL01")
    assert solapi.calls("POST", "/send") == 1 and solapi.group(group_id)["status"] in ("SENDING", "COMPLETE")
    actions = [(e.action, e.actor) for e in ledger(bot)]
    assert ("refused", "U0ERIN001") in actions and actions.count(("approved", "U0BOB0001")) == 1
    assert actions[-1] == ("sent", "U0CAROL01")

"""Approval rules applied (issue 15.1): a schedule that a rule of SMS_POLICY_FILE matches is held by the bot
(bot/operations/held.py, reason `approval`: nothing at the provider) and posted with Approve / Reject. Each
approval is recorded; a click from someone no rule lets approve is refused and recorded with the rule. Once
every matching rule has its quorum (distinct approvers, never the requester, a user group's members as they
are at that click) the hold is released once (a conditional update) and submitted; the submission's own
claim makes the provider call happen exactly once. Reject closes it; a hold older than APPROVAL_TTL expires.

The rules are named in the hold (`held_sends.rules`) and read from the file when judged: a rule since
removed from the file no longer asks for anything.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime

from bot.domain import commands, held_window
from bot.domain.approval_rules import ApprovalPolicy, PlannedSend, PolicyFileError, Rule, may_approve, satisfied
from bot.domain.results import Card, CardKind, Reply, Tone
from bot.domain.text_limits import telnyx_measure
from bot.operations.approval_rules import load_policy
from bot.operations.common import Invoker, card_for, when
from bot.operations.held import held_send, submit
from bot.operations.services import Services
from bot.providers.base import ProviderName
from bot.providers.registry import display
from db.models import HELD, SUBMITTED, SUBMITTING, SYSTEM_ACTOR, Action, HeldReason, HeldSend, Outcome, TrackedSend

log = logging.getLogger(__name__)

HOLD_VALUE = "held:"  # an Approve/Reject button's value for a held send: `held:<send id>`
_policies: dict[str, tuple[float, ApprovalPolicy | None]] = {}


def current_policy(services: Services) -> ApprovalPolicy | None:
    """The rules file as it is now (re-read when it changes; it was checked at start-up). A file that
    became unreadable keeps the last good rules, so a typo never lets a send past them."""
    path = services.settings.sms_policy_file
    if not path:
        return None
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        mtime = -1.0
    hit = _policies.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        policy = load_policy(path)
    except PolicyFileError:
        if hit is None:
            raise
        log.warning("SMS_POLICY_FILE became unreadable; the last good rules stay in force", exc_info=True)
        return hit[1]
    _policies[path] = (mtime, policy)
    return policy


def segments(provider: ProviderName, text: str) -> int:
    return 1 if provider is ProviderName.SOLAPI else telnyx_measure(text).parts


def required(services: Services, action: str, provider: ProviderName, recipients: int, text: str,
             send_at: datetime) -> tuple[Rule, ...]:
    """The rules a planned send must satisfy first (none with no rules file)."""
    policy = current_policy(services)
    if policy is None:
        return ()
    return policy.required(PlannedSend(action, provider.value, recipients, segments(provider, text),
                                       send_at.astimezone(UTC)))


async def members_of(services: Services, rules: tuple[Rule, ...]) -> dict[str, frozenset[str]]:
    """Each @group's members now (Slack's usergroups, cached briefly by the Slack layer)."""
    handles = sorted({a for rule in rules for a in rule.approvers if a.startswith("@")})
    if services.group_members is None:
        return {}
    return {handle: frozenset(await services.group_members(handle)) for handle in handles}


def _who(rule: Rule) -> str:
    return ", ".join(a if a.startswith("@") else f"<@{a}>" for a in rule.approvers)


def needs(rules: tuple[Rule, ...]) -> str:
    """The rules and the approvals they ask for, in words."""
    return "; ".join(f"“{r.name}” needs {r.quorum} approval(s) from {_who(r)}" for r in rules)


def _progress(rules: tuple[Rule, ...], approvals: list[str], requester: str,
              members: dict[str, frozenset[str]]) -> str:
    parts = []
    for rule in rules:
        counted = sorted({a for a in approvals if a != requester and may_approve(rule, a, requester, members)})
        by = f" ({', '.join(f'<@{a}>' for a in counted)})" if counted else ""
        parts.append(f"“{rule.name}”: {len(counted)} of {rule.quorum} approval(s) from {_who(rule)}{by}")
    return "; ".join(parts)


def _card_line(send: TrackedSend, held: HeldSend, progress: str) -> str:
    return (f"Held by the bot until approved: nothing is at {display(send.provider)} yet. {progress}. "
            f"Expires {when(held.expires_at)} unless approved.")


async def schedule_hold(services: Services, who: Invoker, cmd: commands.Schedule) -> Reply | None:
    """Hold `/sms schedule` for approval when a rule asks for it; None when none does (or no file)."""
    try:
        rules = required(services, "schedule", cmd.provider, len(cmd.to), cmd.text, cmd.send_at)
    except PolicyFileError as error:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=cmd.provider,
            detail=f"schedule refused: the approval rules file cannot be read: {error}"))
        return Reply(Tone.REFUSED, f"Not scheduled: the approval rules file (SMS_POLICY_FILE) cannot be read "
                                   f"({error}); ask an admin to fix it.")
    return await hold_for_approval(services, who, cmd, rules) if rules else None


async def hold_for_approval(services: Services, who: Invoker, cmd: commands.Schedule,
                            rules: tuple[Rule, ...]) -> Reply:
    """/sms schedule that the rules file says needs approval: held, and posted with Approve / Reject."""
    now = services.now()
    send = held_send(who, cmd, now)
    send.provider_status = "awaiting approval"
    expires = now + services.settings.approval_ttl
    held = HeldSend(send_id=send.id, reason=HeldReason.APPROVAL, recipients=json.dumps(list(cmd.to)),
                    text=cmd.text, submit_at=None, rules=json.dumps([r.name for r in rules]), expires_at=expires,
                    created_at=now, updated_at=now)
    draft = who.draft(Action.APPROVAL_REQUESTED, Outcome.OK, provider=cmd.provider, target=send.target,
                      detail=f"held by the bot for approval: {len(cmd.to)} recipient(s) at {when(cmd.send_at)}; "
                             f"{needs(rules)}; expires {when(expires)}")
    await services.db(services.store.add_held, send, held, draft)
    await services.db(services.reminders.plan, send)  # a job-store write: off the event loop
    channel = services.settings.sms_channel or who.channel
    if channel:
        ts = await services.notifier.post_card(channel, _card(send, held, rules, _progress(rules, [], who.user, {})))
        if ts:
            await services.db(services.store.set_notice, send.batch_id, channel, ts)
    where = f" in <#{channel}>" if channel and channel != who.channel else ""
    return Reply(Tone.OK, f"Held for approval{where} as `{send.target}`: {needs(rules)}. Nothing is at "
                          f"{display(cmd.provider)} until then; the request expires {when(expires)}.")


def _card(send: TrackedSend, held: HeldSend, rules: tuple[Rule, ...], progress: str) -> Card:
    card = card_for([send], CardKind.HOLD, f"<@{send.created_by}> asks to schedule an SMS", HOLD_VALUE + send.id,
                    _card_line(send, held, progress))
    card.approval_note = needs(rules)
    return card


async def _show(services: Services, send: TrackedSend, kind: CardKind, line: str,
                rules: tuple[Rule, ...] = (), held: HeldSend | None = None) -> None:
    fresh = await services.db(services.store.get_send, send.id)
    if fresh is None or not fresh.notice_channel or not fresh.notice_ts:
        return
    if kind is CardKind.HOLD and held is not None:
        card = _card(fresh, held, rules, line)
    else:
        card = card_for([fresh], kind, f"<@{fresh.created_by}> asks to schedule an SMS", fresh.batch_id, line)
    await services.notifier.update_card(fresh.notice_channel, fresh.notice_ts, card)


def rules_of(services: Services, held: HeldSend) -> tuple[Rule, ...]:
    names = json.loads(held.rules or "[]")
    policy = current_policy(services)
    by_name = {rule.name: rule for rule in policy.rules} if policy is not None else {}
    return tuple(by_name[name] for name in names if name in by_name)


async def decide(services: Services, who: Invoker, value: str, approve: bool) -> Reply:
    """A click on Approve or Reject of a held send's card."""
    send_id = value.removeprefix(HOLD_VALUE)
    send = await services.db(services.store.get_send, send_id)
    held = await services.db(services.store.get_held, send_id)
    if send is None or held is None or held.reason != HeldReason.APPROVAL:
        return Reply(Tone.ERROR, "This request is not in the ledger; nothing was done.")
    label = f"{display(send.provider)} `{send.target}`"
    if send.state != HELD or held.submit_at is not None:
        return Reply(Tone.INFO, _closed(send, held))
    now = services.now()
    assert held.expires_at is not None
    if held.expires_at <= now:
        await expire(services, send, held)
        return Reply(Tone.REFUSED, f"This request expired at {when(held.expires_at)}; nothing was sent. Schedule "
                                   "it again if it is still wanted.")
    rules = rules_of(services, held)
    members = await members_of(services, rules)  # judged now: a member removed since the request no longer counts
    if not approve:
        return await _reject(services, who, send, rules, members)
    mine = [r for r in rules if may_approve(r, who.user, send.created_by, members)]
    if rules and not mine:
        rule = rules[0]
        reason = ("nobody approves their own send" if who.user == send.created_by
                  else f"<@{who.user}> is not among its approvers ({_who(rule)})")
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=send.provider, target=send.target,
            detail=f"approval refused by rule “{rule.name}”: {reason}"))
        return Reply(Tone.REFUSED, f"You can't approve {label}: rule “{rule.name}”: {reason}.")
    added = await services.db(services.store.add_held_approval, send.id, who.user, who.draft(
        Action.APPROVED, Outcome.OK, provider=send.provider, target=send.target,
        detail=f"approved for rule(s) {', '.join(f'“{r.name}”' for r in mine) or '(none left in the file)'}; "
               f"requested by {send.created_by}"))
    approvals = await services.db(services.store.held_approvers, send.id)
    progress = _progress(rules, approvals, send.created_by, members)
    if not all(satisfied(rule, approvals, send.created_by, members) for rule in rules):
        if added:
            await _show(services, send, CardKind.HOLD, progress, rules, held)
            return Reply(Tone.OK, f"Approval recorded. Still needed: {progress}.")
        fresh = await services.db(services.store.get_send, send.id)
        if fresh is not None and fresh.state != HELD:
            return Reply(Tone.INFO, _closed(fresh, held))
        return Reply(Tone.INFO, f"You already approved this. Still needed: {progress}.")
    assert send.send_at is not None
    name = ProviderName(send.provider)
    due = held_window.submit_at(name, send.send_at) if held_window.beyond_window(name, send.send_at, now) else now
    released = await services.db(services.store.release_held, send.id, due, Invoker(
        SYSTEM_ACTOR, send.team, send.channel).draft(
        Action.APPROVED, Outcome.OK, provider=send.provider, target=send.target,
        detail=f"every rule has its approvals ({progress}): released for submission from {when(due)}"))
    if not released:
        return Reply(Tone.INFO, f"Approval recorded; {label} was already released by another approval.")
    if due > now:  # still beyond the provider's window: the submission loop hands it over then
        await _show(services, send, CardKind.SCHEDULED, f"Approved ({progress}). Held by the bot: handed to "
                                                        f"{display(send.provider)} on {when(due)}.")
        return Reply(Tone.OK, f"Approved: {label} is handed to {display(send.provider)} on {when(due)}.")
    released_hold = await services.db(services.store.get_held, send.id)
    await submit(services, send, released_hold or held)
    return Reply(Tone.OK, f"Approved: every rule has its approvals; {label} was handed to {display(send.provider)}.")


async def _reject(services: Services, who: Invoker, send: TrackedSend, rules: tuple[Rule, ...],
                  members: dict[str, frozenset[str]]) -> Reply:
    """Reject: by any approver of its rules, its requester (withdrawing it) or an admin."""
    label = f"{display(send.provider)} `{send.target}`"
    allowed = (who.user == send.created_by or services.permissions.is_admin(who.user)
               or any(may_approve(r, who.user, send.created_by, members) for r in rules))
    if not allowed:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=send.provider, target=send.target,
            detail=f"reject refused: only its approvers ({'; '.join(_who(r) for r in rules)}), its requester or "
                   "an admin (SMS_ADMINS) may reject it"))
        return Reply(Tone.REFUSED, f"You can't reject {label}: only its approvers, <@{send.created_by}> or an "
                                   "admin (SMS_ADMINS) may.")
    draft = who.draft(Action.REJECTED, Outcome.OK, provider=send.provider, target=send.target,
                      detail="rejected: held by the bot, so nothing had reached the provider")
    if not await services.db(services.store.claim_held, send.id, "rejected", None, [draft]):
        fresh = await services.db(services.store.get_send, send.id)
        held = await services.db(services.store.get_held, send.id)
        return Reply(Tone.INFO, _closed(fresh or send, held))
    await services.db(services.reminders.drop, send.id)
    await _show(services, send, CardKind.CLOSED, f"Rejected by <@{who.user}> at {when(services.now())}; nothing "
                                                 "was sent.")
    return Reply(Tone.OK, f"Rejected {label}; nothing was sent.")


async def expire(services: Services, send: TrackedSend, held: HeldSend) -> bool:
    draft = Invoker(SYSTEM_ACTOR, send.team, send.channel).draft(
        Action.EXPIRED, Outcome.OK, provider=send.provider, target=send.target,
        detail=f"not approved by {when(held.expires_at)} (APPROVAL_TTL): closed, nothing was sent")
    if not await services.db(services.store.claim_held, send.id, "expired", None, [draft]):
        return False
    await services.db(services.reminders.drop, send.id)
    await _show(services, send, CardKind.CLOSED, f"Expired at {when(held.expires_at)} without the approvals it "
                                                 "needed; nothing was sent.")
    return True


async def expire_due(services: Services) -> int:
    """One pass (each replica's held loop runs it): close approval holds older than APPROVAL_TTL."""
    expired = 0
    for send in await services.db(services.store.expired_approval_holds, services.now()):
        held = await services.db(services.store.get_held, send.id)
        if held is not None and await expire(services, send, held):
            expired += 1
    return expired


def _closed(send: TrackedSend, held: HeldSend | None) -> str:
    label = f"{display(send.provider)} `{send.target}`"
    match send.state:
        case "rejected":
            return f"{label} was rejected; nothing was sent. Nothing was done."
        case "expired":
            return f"{label} expired without its approvals; nothing was sent. Nothing was done."
        case "cancelled":
            return f"{label} was cancelled; nothing was sent. Nothing was done."
        case s if s in (SUBMITTING, SUBMITTED) or (s == HELD and held is not None and held.submit_at):
            return f"{label} is already approved and released to {display(send.provider)}. Nothing more was done."
    return f"{label} is `{send.state}`; this request is closed. Nothing was done."



async def send_gate(services: Services, who: Invoker, approval_id: str, requester: str,
                    send: TrackedSend) -> Reply | bool:
    """`/sms send` of a Solapi group under the rules file, at an Approve click: False when no rule applies
    (today's approval), True when every matching rule now has its quorum (the caller claims and sends, once),
    or the answer to give (refused, or recorded and still short). The rules are judged at the click, which is
    when such a send goes out; each approval is an `approved` ledger entry marked with the request's id."""
    try:
        rules = required(services, "send", ProviderName(send.provider), send.recipient_count, send.text_preview,
                         services.now())
    except PolicyFileError as error:
        return Reply(Tone.REFUSED, f"Not sent: the approval rules file (SMS_POLICY_FILE) cannot be read ({error}).")
    if not rules:
        return False
    label = f"{display(send.provider)} `{send.target}`"
    members = await members_of(services, rules)
    mine = [r for r in rules if may_approve(r, who.user, requester, members)]
    if not mine:
        rule = rules[0]
        reason = ("nobody approves their own send" if who.user == requester
                  else f"<@{who.user}> is not among its approvers ({_who(rule)})")
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=send.provider, target=send.target,
            detail=f"approval refused by rule “{rule.name}”: {reason}"))
        return Reply(Tone.REFUSED, f"You can't approve {label}: rule “{rule.name}”: {reason}.")
    marker = f"request {approval_id}:"
    before = await services.db(services.store.approvers_in_ledger, send.target, marker)
    if who.user not in before:
        await services.db(services.store.record, who.draft(
            Action.APPROVED, Outcome.OK, provider=send.provider, target=send.target,
            detail=f"{marker} approved for rule(s) {', '.join(f'“{r.name}”' for r in mine)}"))
    approvals = await services.db(services.store.approvers_in_ledger, send.target, marker)
    if all(satisfied(rule, approvals, requester, members) for rule in rules):
        return True
    return Reply(Tone.OK if who.user not in before else Tone.INFO,
                 ("Approval recorded" if who.user not in before else "You already approved this")
                 + f". Still needed: {_progress(rules, approvals, requester, members)}.")


def send_needs(services: Services, send: TrackedSend) -> str | None:
    """At `/sms send`: the rules that will ask for approvals, in words (None when none applies now)."""
    try:
        rules = required(services, "send", ProviderName(send.provider), send.recipient_count, send.text_preview,
                         services.now())
    except PolicyFileError:
        return None  # the Approve click refuses it then, saying why
    return needs(rules) if rules else None

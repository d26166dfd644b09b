"""The opt-out list: numbers that replied STOP (Telnyx, Twilio webhooks) or that an admin added.
`guard.check_send` refuses every schedule and send to them; `/sms policy` says what rules are in force."""

from __future__ import annotations

import logging
from pathlib import Path

from bot.domain import approval_rules, commands
from bot.domain.results import Reply, Tone
from bot.operations import guard
from bot.operations.common import Invoker
from bot.operations.services import Services
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, OptOut, Outcome

log = logging.getLogger(__name__)

# The keywords carriers and Telnyx treat as an opt-out or opt-in, as the whole message (any case).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "UNSTOP"})
LISTED = 20  # numbers shown by `/sms optout list`


def keyword(text: str) -> bool | None:
    """True for an opt-out keyword, False for an opt-in one, None for any other message."""
    word = "".join(ch for ch in text.strip().upper() if ch.isalnum())
    if word in STOP_WORDS:
        return True
    if word in START_WORDS:
        return False
    return None


async def inbound(services: Services, provider: str, number: str, text: str, opt_out: bool | None = None) -> str:
    """An inbound message from `number`: a STOP-type keyword puts it on the list, START takes it off.
    `opt_out` when the provider already classified it (Twilio's OptOutType). Returns what was done."""
    wanted = keyword(text) if opt_out is None else opt_out
    if wanted is None or not number.startswith("+"):
        return "ignored"
    shown = text.strip()[:40]
    if wanted:
        done = await services.db(services.store.add_optout, OptOut(
            number=number, source=provider, added_by=SYSTEM_ACTOR, detail=f"replied {shown!r}",
            added_at=services.now()), EntryDraft(
            actor=SYSTEM_ACTOR, action=Action.OPTED_OUT, outcome=Outcome.OK, provider=provider, target=number,
            detail=f"{number} replied {shown!r} to {provider}: no more messages to it"))
        return "opted out" if done else "already opted out"
    done = await services.db(services.store.remove_optout, number, EntryDraft(
        actor=SYSTEM_ACTOR, action=Action.OPTED_IN, outcome=Outcome.OK, provider=provider, target=number,
        detail=f"{number} replied {shown!r} to {provider}: it may be messaged again"))
    return "opted in" if done else "was not opted out"


async def edit(services: Services, who: Invoker, cmd: commands.OptOutEdit) -> Reply:
    verb = "add to" if cmd.add else "remove from"
    if not services.permissions.is_admin(who.user):
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, target=cmd.number,
            detail=f"opt-out {verb} the list refused by admins only (SMS_ADMINS)"))
        return Reply(Tone.REFUSED, "Only admins (SMS_ADMINS) may edit the opt-out list.")
    if cmd.add:
        note = cmd.reason or "added by an admin"
        added = await services.db(services.store.add_optout, OptOut(
            number=cmd.number, source="slack", added_by=who.user, detail=note[:300], added_at=services.now()),
            who.draft(Action.OPTED_OUT, Outcome.OK, target=cmd.number, detail=f"added to the opt-out list: {note}"))
        if not added:
            return Reply(Tone.INFO, f"{cmd.number} is already on the opt-out list; nothing changed.")
        return Reply(Tone.OK, f"{cmd.number} is on the opt-out list: every schedule and send to it is refused.")
    removed = await services.db(services.store.remove_optout, cmd.number, who.draft(
        Action.OPTED_IN, Outcome.OK, target=cmd.number, detail=f"removed from the opt-out list: {cmd.reason}"))
    if not removed:
        return Reply(Tone.INFO, f"{cmd.number} is not on the opt-out list; nothing changed.")
    return Reply(Tone.OK, f"{cmd.number} is off the opt-out list (reason recorded: {cmd.reason}).")


async def listing(services: Services, who: Invoker) -> Reply:
    if not services.permissions.is_admin(who.user):
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, detail="opt-out list refused by admins only (SMS_ADMINS)"))
        return Reply(Tone.REFUSED, "Only admins (SMS_ADMINS) may read the opt-out list.")
    total, newest = await services.db(services.store.optouts, LISTED)
    if not total:
        return Reply(Tone.INFO, "The opt-out list is empty.")
    lines = [f"• {o.number} · {o.source} · {o.added_at:%Y-%m-%d %H:%M} UTC · "
             f"{'<@' + o.added_by + '>' if o.added_by != SYSTEM_ACTOR else 'inbound'} · {o.detail}" for o in newest]
    more = f" (the newest {LISTED} shown)" if total > LISTED else ""
    return Reply(Tone.INFO, f"{total:,} number(s) on the opt-out list{more}:", lines)


async def policy(services: Services, who: Invoker) -> Reply:
    """`/sms policy`: every rule in force, in words."""
    settings, permissions = services.settings, services.permissions
    lines = await guard.describe_rules(services)
    admins = ", ".join(f"<@{a}>" for a in sorted(permissions.admins))
    if permissions.admins:
        lines.append(f"*Admins* (SMS_ADMINS): {admins}: they approve sends, cancel anything, edit opt-outs "
                     "and may `--override`; others cancel only what they scheduled.")
    else:
        lines.append("*Admins*: none set (`SMS_ADMINS` is empty), so every member may approve, cancel, edit "
                     "opt-outs and `--override`.")
    if permissions.require_second_approver:
        lines.append("*Approvals*: a second person must approve; nobody approves their own send.")
    auditors = ", ".join(f"<@{a}>" for a in sorted(permissions.auditors))
    lines.append(f"*Audit*: {'admins and ' + auditors if auditors else 'admins'} read everyone's trail; others "
                 "their own." if permissions.admins or permissions.auditors else "*Audit*: everyone reads everyone's.")
    lines.append(f"*Telnyx cancels*: refused within {settings.telnyx_cancel_guard.total_seconds():.0f}s of "
                 "the send time.")
    lines.extend(_approval_rules(getattr(settings, "sms_policy_file", None)))
    return Reply(Tone.INFO, "Rules in force:", lines)


def _approval_rules(path: object) -> list[str]:
    """The approval rules file's rules (SMS_POLICY_FILE, wired by the approvals work), in words."""
    if not path:
        return []
    try:
        rules = approval_rules.parse(Path(str(path)).read_text(encoding="utf-8")).describe()
    except (OSError, approval_rules.PolicyFileError) as error:
        log.warning("could not read SMS_POLICY_FILE for /sms policy", exc_info=True)
        return [f"*Approval rules* (SMS_POLICY_FILE): could not be read: {error}"]
    if not rules:
        return ["*Approval rules* (SMS_POLICY_FILE): none."]
    return ["*Approval rules* (SMS_POLICY_FILE):", *[f"• {rule}" for rule in rules]]

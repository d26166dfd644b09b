"""Sends the bot keeps itself: nothing at the provider yet, the full content in `held_sends`, handed to the
provider exactly once later (issue 14.4: beyond the provider's window; issue 15.1: awaiting approval).

A held send is a tracked send in state `held` with a bot id (`held-…`): it is listed, reminded about and
cancelled like any other, with no provider call. Submission is one conditional update (`held` →
`submitting`) taken with its intent in one transaction, so of several replicas (or a replica and a
restart) exactly one calls the provider; the intent carries the whole request under its idempotency key,
so a crash mid-call is settled by reconciliation (bot/operations/reconcile.py) like any schedule whose
answer was lost.

For other branches:
- `before_submit(services, send, held)` is THE place a held send is checked just before it goes to the
  provider (quiet hours, opt-outs and caps belong here); a refusal is recorded with its rule and posted.
- `held_reschedule(services, who, send, send_at)` moves a held send (no provider call).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from bot.domain import commands, held_window, policy
from bot.domain.policy import Decision
from bot.domain.results import CardKind, Reply, Tone
from bot.operations.common import Invoker, card_for, describe_error, ledger_detail, when
from bot.operations.schedule import UNKNOWN_KIND, tracked_send, unknown_intent
from bot.operations.services import Services
from bot.providers.base import ProviderError, ProviderName, ScheduleOutcome, ScheduleRequest
from bot.providers.registry import display
from db.models import (
    HELD,
    SUBMITTED,
    SUBMITTING,
    SYSTEM_ACTOR,
    Action,
    HeldReason,
    HeldSend,
    Intent,
    Outcome,
    TrackedSend,
)
from db.store import new_id

log = logging.getLogger(__name__)

HELD_PREFIX = "held-"


def is_held(send: TrackedSend | None) -> bool:
    return send is not None and send.state == HELD


def _preview(text: str, limit: int = 280) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _recipients_preview(recipients: tuple[str, ...]) -> str:
    shown = ", ".join(recipients[:5])
    return shown + (f" and {len(recipients) - 5} more" if len(recipients) > 5 else "")


def held_send(who: Invoker, cmd: commands.Schedule, now: datetime) -> TrackedSend:
    return TrackedSend(
        id=new_id(), provider=cmd.provider, target=HELD_PREFIX + new_id()[:20], batch_id=new_id(), state=HELD,
        provider_status="held by the bot", send_at=cmd.send_at, recipient_count=len(cmd.to),
        recipients_preview=_recipients_preview(cmd.to), text_preview=_preview(cmd.text), created_by=who.user,
        team=who.team, channel=who.channel, created_at=now, updated_at=now,
    )


async def hold_beyond_window(services: Services, who: Invoker, cmd: commands.Schedule) -> Reply:
    """/sms schedule further ahead than the provider schedules: kept by the bot until it is inside."""
    now = services.now()
    send = held_send(who, cmd, now)
    due = held_window.submit_at(cmd.provider, cmd.send_at)
    content = HeldSend(send_id=send.id, reason=HeldReason.WINDOW, recipients=json.dumps(list(cmd.to)),
                       text=cmd.text, submit_at=due, created_at=now, updated_at=now)
    draft = who.draft(Action.SCHEDULED, Outcome.OK, provider=cmd.provider, target=send.target,
                      detail=f"held by the bot: {len(cmd.to)} recipient(s) at {when(cmd.send_at)}, beyond "
                             f"{display(cmd.provider)}'s window; submitted to it from {when(due)}")
    await services.db(services.store.add_held, send, content, draft)
    await services.db(services.reminders.plan, send)  # a job-store write: off the event loop
    channel = who.channel or services.settings.sms_channel
    if channel:
        card = card_for([send], CardKind.SCHEDULED, f"<@{who.user}> scheduled an SMS", send.batch_id,
                        _held_line(send, due))
        ts = await services.notifier.post_card(channel, card)
        if ts:
            await services.db(services.store.set_notice, send.batch_id, channel, ts)
    return Reply(Tone.OK, f"Scheduled for {when(cmd.send_at)} to {len(cmd.to)} recipient(s): held by the bot as "
                          f"`{send.target}` ({display(cmd.provider)} schedules at most "
                          f"{held_window.MAX_AHEAD[cmd.provider].days} days ahead) and handed to "
                          f"{display(cmd.provider)} on {when(due)}. Cancel it with `/sms cancel {send.target}`.")


def _held_line(send: TrackedSend, due: datetime | None) -> str:
    if due is None:
        return "Held by the bot: awaiting approval; nothing is at the provider yet."
    return f"Held by the bot: handed to {display(send.provider)} on {when(due)}; nothing is at the provider yet."


async def before_submit(services: Services, send: TrackedSend, held: HeldSend) -> Decision:
    """The last check before a held send reaches its provider. Other rules (quiet hours, opt-outs, daily
    caps) are added here; a refusal is recorded with its reason as the rule and posted to the channel."""
    window = policy.schedule_window(ProviderName(send.provider), send.send_at or services.now(), services.now())
    if not window.allowed:
        return Decision.refuse(f"provider window: {window.reason}")
    # Quiet hours and caps were judged (or overridden by an admin) when it was scheduled, for this send
    # time; an opt-out can arrive while it waits (for approval, or for the provider's window).
    opted = await services.db(services.store.opted_out, list(json.loads(held.recipients)))
    if opted:
        shown = ", ".join(opted[:5]) + (f" and {len(opted) - 5} more" if len(opted) > 5 else "")
        return Decision.refuse(f"opt-outs: {len(opted)} recipient(s) opted out while it waited ({shown})")
    return Decision.allow()


async def submit_due(services: Services) -> int:
    """One pass of the submission loop (each replica runs it): every held send whose time has come is
    handed to its provider; returns how many this replica submitted."""
    await services.db(services.store.settle_submitted_held)
    submitted = 0
    for send, held in await services.db(services.store.due_held, services.now()):
        try:
            if await submit(services, send, held):
                submitted += 1
        except Exception:
            log.exception("could not submit a held send", extra={"send": send.id})
    return submitted


async def submit(services: Services, send: TrackedSend, held: HeldSend) -> bool:
    """Hand one held send to its provider, unless another replica already did; True if this call did."""
    name = ProviderName(send.provider)
    system = Invoker(user=SYSTEM_ACTOR, team=send.team, channel=send.channel)
    label = f"held send `{send.target}`"
    channel = send.channel or services.settings.sms_channel
    provider = services.providers.get(name)
    decision = (await before_submit(services, send, held) if provider is not None
                else Decision.refuse(f"{display(name)} is not configured here"))
    if not decision.allowed:
        draft = system.draft(Action.REFUSED, Outcome.REFUSED, provider=name, target=send.target,
                             detail=f"submission of {label} refused: {decision.reason}")
        if await services.db(services.store.claim_held, send.id, "failed", None, [draft]):
            await services.db(services.reminders.drop, send.id)
            await _tell(services, send, channel, f"⛔ <@{send.created_by}>'s {label} for {when(send.send_at)} was "
                                                 f"not handed to {display(name)}: {decision.reason}. Nothing was sent.")
        return False
    assert provider is not None
    to = tuple(json.loads(held.recipients))
    assert send.send_at is not None
    now = services.now()
    intent_id = new_id()
    # The whole request in the intent, under its key: a crash mid-call is settled by reconciliation,
    # which asks a provider that honours the key (Telnyx) again, as for any schedule whose answer was lost.
    payload = {"kind": UNKNOWN_KIND, "key": intent_id, "to": list(to), "text": held.text,
               "send_at": send.send_at.isoformat(), "sender": held.sender, "batch_id": send.batch_id,
               "held": send.id}
    intent = Intent(id=intent_id, operation="schedule", provider=name, actor=SYSTEM_ACTOR, team=send.team,
                    channel=send.channel, payload=json.dumps(payload, ensure_ascii=False), started_at=now)
    if not await services.db(services.store.claim_held, send.id, SUBMITTING, intent):
        return False  # another replica (or a cancel) got there first
    request = ScheduleRequest(to=to, text=held.text, send_at=send.send_at, sender=held.sender, key=intent_id)
    try:
        outcome = await provider.schedule(request)
    except ProviderError as error:
        if not error.outcome_unknown:
            await services.db(services.store.close_intent, intent.id, [system.draft(
                Action.FAILED, Outcome.ERROR, provider=name, target=send.target,
                detail=f"submission of {label} to {len(to)} recipient(s) failed: {ledger_detail(error)}")],
                [(send.id, "failed", "submission failed")])
            await services.db(services.reminders.drop, send.id)
            await _tell(services, send, channel, f"⚠️ <@{send.created_by}>'s {label} for {when(send.send_at)} "
                                                 f"could not be handed to {display(name)}: {describe_error(error)} "
                                                 "Nothing was sent; schedule it again if it is still wanted.")
            return True
        outcome = ScheduleOutcome(scheduled=[], unknown=[(recipient, error) for recipient in to])
    owner = Invoker(user=send.created_by, team=send.team, channel=send.channel)
    sends = [tracked_send(state, send.batch_id, owner, held.text, send.send_at, to, services.now())
             for state in outcome.scheduled]
    drafts = [system.draft(Action.SCHEDULED, Outcome.OK, provider=name, target=s.target,
                           detail=f"{label} submitted: {s.recipient_count} recipient(s) at {when(s.send_at)}: "
                                  f"{s.provider_status}") for s in sends]
    drafts += [system.draft(Action.FAILED, Outcome.ERROR, provider=name, target=send.target,
                            detail=f"submission of {label} to {recipient} failed: {ledger_detail(error)}")
               for recipient, error in outcome.failed]
    if outcome.unknown:
        await services.db(services.store.open_intent, unknown_intent(
            owner, name, request, [recipient for recipient, _ in outcome.unknown], send.batch_id, services.now()))
    state = SUBMITTED if sends or outcome.unknown else "failed"
    await services.db(services.store.close_intent, intent.id, drafts,
                      [(send.id, state, "submitted" if state == SUBMITTED else "submission failed")], sends)
    for new in sends:
        await services.db(services.reminders.plan, new)
    if not sends and not outcome.unknown:
        await services.db(services.reminders.drop, send.id)
    ids = ", ".join(f"`{s.target}`" for s in sends[:10])
    outcome_line = f"Handed to {display(name)} on {when(services.now())}" + (f": {ids}" if ids else "")
    if outcome.failed:
        outcome_line += f"; {len(outcome.failed)} recipient(s) refused: " + "; ".join(
            f"{recipient}: {describe_error(error)}" for recipient, error in outcome.failed[:3])
    if outcome.unknown:
        outcome_line += f"; unknown, checking for {len(outcome.unknown)} recipient(s)"
    await _refresh(services, send, outcome_line)
    if outcome.failed or outcome.unknown or not sends:
        await _tell(services, send, channel, f"⚠️ <@{send.created_by}>'s {label}: {outcome_line}.")
    return True


async def _tell(services: Services, send: TrackedSend, channel: str | None, text: str) -> None:
    await _refresh(services, send, text)
    if channel:
        await services.notifier.post_text(channel, text)


async def _refresh(services: Services, send: TrackedSend, outcome: str) -> None:
    """Show what became of the held send on its channel notice (the batch's provider messages, if any)."""
    if not send.notice_channel or not send.notice_ts:
        fresh = await services.db(services.store.get_send, send.id)
        if fresh is None or not fresh.notice_channel or not fresh.notice_ts:
            return
        send = fresh
    batch = await services.db(services.store.batch, send.batch_id)
    waiting = [s for s in batch if s.state in ("scheduled", "pending", HELD)]
    assert send.notice_channel and send.notice_ts
    card = card_for(waiting or [send], CardKind.SCHEDULED if waiting else CardKind.CLOSED,
                    f"<@{send.created_by}> scheduled an SMS", send.batch_id, outcome)
    await services.notifier.update_card(send.notice_channel, send.notice_ts, card)


async def cancel_held(services: Services, who: Invoker, send: TrackedSend) -> tuple[Tone, str]:
    """Cancel a send the bot still holds: nothing at the provider, so no provider call. The caller checked
    the permission."""
    label = f"{display(send.provider)} `{send.target}`"
    draft = who.draft(Action.CANCELLED, Outcome.OK, provider=send.provider, target=send.target,
                      detail="held by the bot: cancelled before it reached the provider (no provider call)")
    if not await services.db(services.store.claim_held, send.id, "cancelled", None, [draft]):
        fresh = await services.db(services.store.get_send, send.id)
        state = fresh.state if fresh is not None else "gone"
        if state in (SUBMITTING, SUBMITTED):
            return Tone.INFO, (f"{label} was just handed to {display(send.provider)}: cancel its message with the "
                               "notice's Cancel button or `/sms cancel <its id>`. Nothing was changed.")
        return Tone.INFO, f"{label} is no longer held (it is `{state}`); nothing was changed."
    await services.db(services.reminders.drop, send.id)
    await _refresh(services, send, f"Cancelled by <@{who.user}> at {when(services.now())} — it was held by the "
                                   "bot; nothing had reached the provider.")
    return Tone.OK, f"Cancelled {label}: it was held by the bot, so nothing had reached {display(send.provider)}."


async def held_reschedule(services: Services, who: Invoker, send: TrackedSend, send_at: datetime) -> Reply:
    """A new time for a held send, with no provider call (for `/sms reschedule`). Inside the provider's
    window it is handed over on the submission loop's next pass."""
    decision = services.permissions.may_cancel(who.user, send.created_by)
    label = f"{display(send.provider)} `{send.target}`"
    if not decision.allowed:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=send.provider, target=send.target,
            detail=f"reschedule refused: {decision.reason}"))
        return Reply(Tone.REFUSED, f"Not rescheduled: {decision.reason.replace('cancel', 'reschedule')}.")
    now = services.now()
    name = ProviderName(send.provider)
    held = await services.db(services.store.get_held, send.id)
    if held is None:
        return Reply(Tone.ERROR, f"{label} is not held by the bot; nothing was changed.")
    window = policy.schedule_window(name, send_at, now)
    if not window.allowed and not held_window.beyond_window(name, send_at, now):
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=name, target=send.target,
            detail=f"reschedule refused: {window.reason}"))
        return Reply(Tone.REFUSED, f"Not rescheduled: {window.reason}.")
    if held.submit_at is None:  # awaiting approval: stays so
        due: datetime | None = None
    else:
        due = held_window.submit_at(name, send_at) if held_window.beyond_window(name, send_at, now) else now
    draft = who.draft(Action.SCHEDULED, Outcome.OK, provider=name, target=send.target,
                      detail=f"held send rescheduled from {when(send.send_at)} to {when(send_at)}"
                             + (f"; submitted from {when(due)}" if due else ""))
    if not await services.db(services.store.reschedule_held, send.id, send_at, due, draft):
        return Reply(Tone.INFO, f"{label} is no longer held; nothing was changed.")
    fresh = await services.db(services.store.get_send, send.id)
    if fresh is not None:
        await services.db(services.reminders.plan, fresh)
        await _refresh(services, fresh, _held_line(fresh, due))
    return Reply(Tone.OK, f"Rescheduled {label} to {when(send_at)}; still held by the bot, nothing at the provider.")


def held_status(send: TrackedSend, held: HeldSend | None) -> Reply:
    """/sms status of a held send: the bot's own view (the provider knows nothing of it yet)."""
    details = [f"Send time: {when(send.send_at)}", f"Recipients: {send.recipient_count} ({send.recipients_preview})",
               f"Scheduled through the bot by <@{send.created_by}>"]
    if held is not None and held.submit_at is not None:
        details.append(f"Handed to {display(send.provider)} on {when(held.submit_at)}")
    elif held is not None:
        details.append("Awaiting approval")
    return Reply(Tone.INFO, f"{display(send.provider)} `{send.target}` is `held` by the bot: nothing is at "
                            f"{display(send.provider)} yet.", details)

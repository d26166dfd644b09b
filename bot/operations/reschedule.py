"""/sms reschedule and the "Change time" button: a scheduled send moved to a new time.

Solapi gives the SCHEDULED group its new date (the same `POST …/schedule`, same group id). The others
(Telnyx, Twilio, HighLevel) have no "change the time": the message is cancelled, then scheduled again
with the same content. The content is read from the provider just before the cancel (its GET shows the
text and the recipient), not kept by the bot: the ledger keeps only previews, the provider's copy is the
one that would have gone out, and it works for sends tracked from elsewhere too. A send whose provider
does not show its text is refused before anything is cancelled.

A rescheduled send gets a new batch: new reminders, a new notice with its buttons; the old notice says
where it went. Every message of a schedule moves together (a notice, its reminders and its buttons are
one batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain import policy
from bot.domain.ids import TargetRef
from bot.domain.results import CardKind, Reply, Tone
from bot.operations import guard as guard_rails
from bot.operations.cancel import CANCELLABLE, already
from bot.operations.common import Invoker, Stop, card_for, describe_error, ledger_detail, provider_for, resolve, when
from bot.operations.schedule import tracked_send, unknown_intent
from bot.operations.services import Services
from bot.providers.base import (
    MessageState,
    Provider,
    ProviderError,
    ProviderName,
    ScheduleOutcome,
    ScheduleRequest,
    SendState,
)
from bot.providers.registry import display
from db.models import Action, Intent, Outcome, TrackedSend
from db.store import CANCELLING, new_id


async def reschedule(services: Services, who: Invoker, ref: TargetRef, send_at: datetime) -> Reply:
    """`/sms reschedule <id> at <when>`: the id's whole schedule moves."""
    try:
        found = await resolve(services, ref)
    except Stop as stop:
        return stop.reply
    if found.send is None:
        return Reply(Tone.ERROR, f"The bot does not follow {display(found.provider_name)} `{found.target}`, so it "
                                 f"can't move it: `/sms track {found.provider_name} {found.target}` first.")
    return await reschedule_batch(services, who, found.send.batch_id, send_at)


async def reschedule_batch(services: Services, who: Invoker, batch_id: str, send_at: datetime) -> Reply:
    sends = await services.db(services.store.batch, batch_id)
    if not sends:
        return Reply(Tone.ERROR, "This send is not in the ledger; nothing was changed.")
    waiting = [s for s in sends if s.state == SendState.SCHEDULED.value]
    if not waiting:
        return Reply(Tone.INFO, await already(services, sends[0]) if sends[0].state not in CANCELLABLE else
                     f"{display(sends[0].provider)} `{sends[0].target}` is `{sends[0].state}`, not scheduled: "
                     "there is no send time to change.")
    first = waiting[0]
    name = ProviderName(first.provider)
    label = f"{display(name)} `{first.target}`" + (f" (and {len(waiting) - 1} more)" if len(waiting) > 1 else "")
    try:
        provider = provider_for(services, name)
    except Stop as stop:
        return stop.reply

    decision = services.permissions.may_cancel(who.user, first.created_by)
    if not decision.allowed:
        await _refuse(services, who, first, decision.reason)
        return Reply(Tone.REFUSED, f"Not moved: {decision.reason.replace('cancel', 'reschedule')}.")
    window = policy.schedule_window(name, send_at, services.now())
    if not window.allowed:
        await _refuse(services, who, first, window.reason)
        return Reply(Tone.REFUSED, f"Not moved: {window.reason}. {label} still goes out at {when(first.send_at)}.")

    if name is ProviderName.SOLAPI:
        return await _move_group(services, who, provider, first, send_at)
    return await _cancel_and_schedule_again(services, who, provider, waiting, send_at, label)


async def _refuse(services: Services, who: Invoker, send: TrackedSend, reason: str) -> None:
    await services.db(services.store.record, who.draft(
        Action.REFUSED, Outcome.REFUSED, provider=send.provider, target=send.target,
        detail=f"reschedule refused: {reason}"))


def _owner(send: TrackedSend) -> Invoker:
    """Who the new send belongs to: whoever scheduled the old one (the rescheduler is in the ledger)."""
    return Invoker(user=send.created_by, team=send.team, channel=send.channel)


# --- Solapi: the same group, a new date ----------------------------------------------------------

async def _move_group(services: Services, who: Invoker, provider: Provider, send: TrackedSend,
                      send_at: datetime) -> Reply:
    label = f"{display(send.provider)} `{send.target}`"
    mover = getattr(provider, "reschedule_group", None)
    if mover is None:  # only Solapi's client has it
        return Reply(Tone.ERROR, f"{display(send.provider)} can't change a send time here; nothing was changed.")
    intent = Intent(id=new_id(), operation="reschedule", provider=send.provider, target=send.target,
                    actor=who.user, team=who.team, channel=who.channel,
                    payload=f"to {send_at.isoformat()}", started_at=services.now())
    await services.db(services.store.open_intent, intent)
    try:
        state: MessageState = await mover(send.target, send_at)
    except ProviderError as error:
        await services.db(services.store.close_intent, intent.id, [who.draft(
            Action.FAILED, Outcome.ERROR, provider=send.provider, target=send.target,
            detail=f"reschedule to {when(send_at)} failed: {ledger_detail(error)}")])
        return Reply(Tone.ERROR, f"Not moved. {describe_error(error)} {label} still goes out at "
                                 f"{when(send.send_at)}.")
    new_at = state.send_at or send_at
    batch_id = new_id()
    detail = f"from {when(send.send_at)} to {when(new_at)} (same group): {state.status}"
    await services.db(services.store.move_send, intent.id, send.id, batch_id, new_at, state.status,
                      [who.draft(Action.RESCHEDULED, Outcome.OK, provider=send.provider, target=send.target,
                                 detail=detail)])
    moved = await services.db(services.store.get_send, send.id)
    if moved is not None:
        await services.db(services.reminders.plan, moved)  # the old batch's reminders find nothing and stay quiet
        await _post_notice(services, who, [moved], batch_id, f"from {when(send.send_at)}", send)
    await _close_old_card([send], services, f"Moved by <@{who.user}> at {when(services.now())} to "
                                            f"{when(new_at)}: see the new notice.")
    return Reply(Tone.OK, f"Moved {label} to {when(new_at)} (it was {when(send.send_at)}). "
                          f"Solapi says `{state.status}`.")


# --- the others: cancel, then schedule the same content again ------------------------------------

@dataclass
class _Content:
    send: TrackedSend
    state: MessageState


async def _cancel_and_schedule_again(services: Services, who: Invoker, provider: Provider,
                                     waiting: list[TrackedSend], send_at: datetime, label: str) -> Reply:
    name = ProviderName(waiting[0].provider)
    contents: list[_Content] = []
    for send in waiting:
        try:
            state = await provider.status(send.target)
        except ProviderError as error:
            await services.db(services.store.record, who.draft(
                Action.FAILED, Outcome.ERROR, provider=name, target=send.target,
                detail=f"reschedule: could not read the message to re-create it: {ledger_detail(error)}"))
            return Reply(Tone.ERROR, f"Not moved; nothing was cancelled. {describe_error(error)}")
        if state.state is not SendState.SCHEDULED:
            return Reply(Tone.INFO, f"{display(name)} `{send.target}` is `{state.status}`, not scheduled: "
                                    "nothing was changed.")
        if not state.text or not state.recipients:
            reason = (f"{display(name)} does not show the text or the recipient of `{send.target}`, so it can't "
                      "be re-created")
            await _refuse(services, who, send, reason)
            return Reply(Tone.REFUSED, f"Not moved; nothing was cancelled: {reason}.")
        contents.append(_Content(send, state))

    if name is ProviderName.TELNYX:  # the guard applies to the cancel half, on the provider's own time
        times = [t for c in contents if (t := c.state.send_at or c.send.send_at) is not None]
        due = min(times, default=None)
        guard = policy.telnyx_cancel(due, services.now(), services.settings.telnyx_cancel_guard)
        if not guard.allowed:
            await _refuse(services, who, contents[0].send, f"Telnyx cancel guard: {guard.reason}")
            return Reply(Tone.REFUSED, f"Not moved: {label} — {guard.reason}. It still goes out at {when(due)}.")

    # the guard rails (opt-outs, quiet hours at the new time, daily caps) judge the move before anything is
    # cancelled, as they judge a schedule
    recipients = tuple(r for c in contents for r in c.state.recipients)
    refusal = await guard_rails.check_send(services, who, guard_rails.SendPlan("reschedule", name, recipients, send_at,
                                                                   target=contents[0].send.target))
    if refusal is not None:
        still = when(contents[0].send.send_at)
        return refusal.reply(f"Not moved; nothing was cancelled ({label} still goes out at {still})")

    cancelled: list[_Content] = []
    problems: list[str] = []
    for content in contents:
        send = content.send
        intent = Intent(id=new_id(), operation="cancel", provider=name, target=send.target, actor=who.user,
                        team=who.team, channel=who.channel, payload=f"reschedule to {send_at.isoformat()}",
                        started_at=services.now())
        if not await services.db(services.store.claim_send, send.id, CANCELLABLE, CANCELLING, intent):
            problems.append(f"`{send.target}`: being changed by someone else right now; left as it is.")
            continue
        try:
            after = await provider.cancel(send.target)
        except ProviderError as error:
            await services.db(services.store.close_intent, intent.id, [who.draft(
                Action.FAILED, Outcome.ERROR, provider=name, target=send.target,
                detail=f"reschedule: cancel failed: {ledger_detail(error)}")], [(send.id, send.state, None)])
            problems.append(f"`{send.target}`: not moved, still at {when(send.send_at)}. {describe_error(error)}")
            continue
        await services.db(services.store.close_intent, intent.id, [who.draft(
            Action.CANCELLED, Outcome.OK, provider=name, target=send.target,
            detail=f"{display(name)}: {after.status}; cancelled to reschedule it to {when(send_at)}")],
            [(send.id, SendState.CANCELLED.value, after.status)])
        await services.db(services.reminders.drop, send.id)
        cancelled.append(content)
    if not cancelled:
        return Reply(Tone.ERROR, f"Not moved: {label} still goes out at {when(waiting[0].send_at)}.", problems)

    return await _schedule_again(services, who, provider, cancelled, send_at, problems)


async def _schedule_again(services: Services, who: Invoker, provider: Provider, cancelled: list[_Content],
                          send_at: datetime, problems: list[str]) -> Reply:
    first = cancelled[0].send
    name = ProviderName(first.provider)
    owner = _owner(first)
    old_of: dict[str, TrackedSend] = {}
    to: list[str] = []
    for content in cancelled:
        for recipient in content.state.recipients:
            to.append(recipient)
            old_of[recipient] = content.send
    text = cancelled[0].state.text or ""
    intent = Intent(id=new_id(), operation="schedule", provider=name, actor=who.user, team=who.team,
                    channel=who.channel, payload=f"reschedule of {len(to)} recipients to {send_at.isoformat()}",
                    started_at=services.now())
    await services.db(services.store.open_intent, intent)
    request = ScheduleRequest(to=tuple(to), text=text, send_at=send_at, key=intent.id)
    try:
        outcome = await provider.schedule(request)
    except ProviderError as refused:
        if not refused.outcome_unknown:
            outcome = ScheduleOutcome(scheduled=[], failed=[(r, refused) for r in to])
        else:
            outcome = ScheduleOutcome(scheduled=[], unknown=[(r, refused) for r in to])
    batch_id = new_id()
    now = services.now()
    new_sends = [tracked_send(state, batch_id, owner, text, send_at, to, now) for state in outcome.scheduled]
    drafts = []
    for new in new_sends:
        recipient = (new.recipients_preview or "").split(",")[0].strip()
        old = old_of.get(recipient, first)
        drafts.append(who.draft(Action.RESCHEDULED, Outcome.OK, provider=name, target=old.target,
                                detail=f"from {when(old.send_at)} to {when(new.send_at)} as `{new.target}`"))
        drafts.append(who.draft(Action.SCHEDULED, Outcome.OK, provider=name, target=new.target,
                                detail=f"{new.recipient_count} recipient(s) at {when(new.send_at)}: "
                                       f"{new.provider_status}; rescheduled from `{old.target}`"))
    for recipient, error in outcome.failed:
        old = old_of.get(recipient, first)
        drafts.append(who.draft(Action.FAILED, Outcome.ERROR, provider=name, target=old.target,
                                detail=f"reschedule: cancelled, but scheduling it again for {when(send_at)} "
                                       f"failed: {ledger_detail(error)}; cancelled, not moved"))
    if outcome.unknown:
        await services.db(services.store.open_intent, unknown_intent(
            owner, name, request, [recipient for recipient, _ in outcome.unknown], batch_id, services.now()))
    await services.db(services.store.close_intent, intent.id, drafts, (), new_sends)
    for new in new_sends:
        await services.db(services.reminders.plan, new)

    old_sends = [c.send for c in cancelled]
    if new_sends:
        await _post_notice(services, who, new_sends, batch_id, f"from {when(first.send_at)}", first)
    lost = [recipient for recipient, _ in outcome.failed]
    unknown = [recipient for recipient, _ in outcome.unknown]
    stamp = f"<@{who.user}> at {when(services.now())}"
    if not new_sends and lost:
        why = outcome.failed[0][1]
        await _close_old_card(old_sends, services, f"⚠️ Cancelled, not moved: rescheduled by {stamp}, but "
                                                   f"{display(name)} refused the new time. Nothing goes out.")
        return Reply(Tone.ERROR, f"{display(name)} `{first.target}` is now cancelled, not moved: it was cancelled, "
                                 f"then scheduling it again for {when(send_at)} failed. {describe_error(why)} "
                                 "Nothing will go out: schedule it again with `/sms schedule`.", problems)
    if not new_sends:
        await _close_old_card(old_sends, services, f"Cancelled to move it to {when(send_at)} by {stamp}; "
                                                   f"{display(name)} did not say whether it took the new time.")
        return Reply(Tone.INFO, f"{display(name)} `{first.target}` was cancelled; whether {display(name)} took "
                                f"the new time {when(send_at)} is unknown, checking. Don't schedule it again "
                                "meanwhile.", problems)
    ids = ", ".join(f"`{s.target}`" for s in new_sends[:10])
    note = f"Moved by {stamp} to {when(send_at)}: now {ids}; see the new notice."
    if lost:
        note += f" ⚠️ {len(lost)} recipient(s) cancelled, not moved: {', '.join(lost[:5])}."
    await _close_old_card(old_sends, services, note)
    details = list(problems)
    details += [f"⚠️ {recipient}: cancelled, not moved. {describe_error(e)}" for recipient, e in outcome.failed]
    details += [f"Unknown, checking: {recipient}" for recipient in unknown]
    text = (f"Moved {display(name)} `{first.target}` to {when(send_at)} (it was {when(first.send_at)}): "
            f"{display(name)} has no change of time, so it was cancelled and scheduled again as {ids}.")
    return Reply(Tone.OK if not details else Tone.INFO, text, details)


# --- the channel ---------------------------------------------------------------------------------

async def _post_notice(services: Services, who: Invoker, sends: list[TrackedSend], batch_id: str,
                       was: str, old: TrackedSend) -> None:
    """A new notice where the old one was (its buttons are bound to the new batch)."""
    channel = old.notice_channel or old.channel or services.settings.sms_channel
    if not channel:
        return
    card = card_for(sends, CardKind.SCHEDULED, f"<@{who.user}> rescheduled an SMS ({was})", batch_id)
    ts = await services.notifier.post_card(channel, card)
    if ts:
        await services.db(services.store.set_notice, batch_id, channel, ts)


async def _close_old_card(old: list[TrackedSend], services: Services, outcome: str) -> None:
    """The old notice shows where the send went (or that it is cancelled), without buttons."""
    first = old[0]
    if not first.notice_channel or not first.notice_ts:
        return
    card = card_for(old, CardKind.CLOSED, f"<@{first.created_by}> scheduled an SMS", first.batch_id, outcome)
    await services.notifier.update_card(first.notice_channel, first.notice_ts, card)

"""/sms cancel: permission, the Telnyx guard, an intent, the provider's cancel, the outcome."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain import policy
from bot.domain.ids import TargetRef
from bot.domain.results import CardKind, Reply, Tone
from bot.operations.approval import close_for_send
from bot.operations.common import (
    Invoker,
    Resolved,
    Stop,
    card_for,
    describe_error,
    ledger_detail,
    resolve,
    when,
)
from bot.operations.held import cancel_held, is_held
from bot.operations.services import Services
from bot.providers.base import ErrorKind, MessageState, ProviderError, ProviderName, SendState
from bot.providers.registry import display
from db.models import Action, Intent, Outcome, TrackedSend
from db.store import CANCELLING, new_id

CANCELLABLE = ("scheduled", "pending", "held")  # held: cancelled in the bot (bot/operations/held.py)


@dataclass
class CancelResult:
    target: str
    provider: str | None
    tone: Tone
    text: str


async def cancel(services: Services, who: Invoker, refs: tuple[TargetRef, ...]) -> Reply:
    results = [await cancel_one(services, who, ref) for ref in refs]
    if len(results) == 1:
        return Reply(results[0].tone, results[0].text)
    return summarise(results)


def summarise(results: list[CancelResult]) -> Reply:
    done = sum(1 for r in results if r.tone is Tone.OK)
    tone = Tone.OK if done == len(results) else (Tone.ERROR if done == 0 else Tone.INFO)
    return Reply(tone, f"Cancelled {done} of {len(results)}.", [f"`{r.target}`: {r.text}" for r in results])


async def cancel_one(services: Services, who: Invoker, ref: TargetRef) -> CancelResult:
    try:
        found = await resolve(services, ref)
    except Stop as stop:
        return CancelResult(ref.id, None, stop.reply.tone, stop.reply.text)
    try:
        return await cancel_resolved(services, who, found)
    except Stop as stop:
        return CancelResult(found.target, found.provider_name, stop.reply.tone, stop.reply.text)


async def cancel_resolved(services: Services, who: Invoker, found: Resolved) -> CancelResult:
    """Cancel a send whose provider and id are already known (a bulk cancel looked them up in one read).
    Raises Stop where `cancel_one` would answer with its reply."""
    name, target, send = found.provider_name, found.target, found.send
    label = f"{display(name)} `{target}`"

    decision = services.permissions.may_cancel(who.user, send.created_by if send else None)
    if not decision.allowed:
        await _refuse(services, who, found, decision.reason)
        return CancelResult(target, name, Tone.REFUSED, f"Not cancelled: {decision.reason}.")

    if send is not None and send.state not in CANCELLABLE:
        return CancelResult(target, name, Tone.INFO, await already(services, send))
    if is_held(send):  # kept by the bot: nothing at the provider to cancel
        assert send is not None
        tone, text = await cancel_held(services, who, send)
        return CancelResult(target, name, tone, text)

    if name is ProviderName.TELNYX:
        send_at = send.send_at if send is not None and send.send_at is not None else None
        if send_at is None:
            state = await _status_or_stop(services, who, found)
            if state.state is not SendState.SCHEDULED:
                return CancelResult(target, name, Tone.INFO,
                                    f"{label} is `{state.status}`, not scheduled: there is nothing to cancel.")
            send_at = state.send_at
        guard = policy.telnyx_cancel(send_at, services.now(), services.settings.telnyx_cancel_guard)
        if not guard.allowed:
            await _refuse(services, who, found, f"Telnyx cancel guard: {guard.reason}")
            return CancelResult(target, name, Tone.REFUSED, f"Not cancelled: {label} — {guard.reason}.")

    intent = Intent(id=new_id(), operation="cancel", provider=name, target=target, actor=who.user,
                    team=who.team, channel=who.channel, started_at=services.now())
    if send is None:
        await services.db(services.store.open_intent, intent)
    elif not await services.db(services.store.claim_send, send.id, ("scheduled", "pending"), CANCELLING, intent):
        # the claim and the intent are one transaction: a crash cannot leave a send stuck "cancelling"
        fresh = await services.db(services.store.get_send, send.id)
        return CancelResult(target, name, Tone.INFO, await already(services, fresh or send))
    try:
        after = await found.provider.cancel(target)
    except ProviderError as error:
        confirmed = await _confirm_after_error(found, error)
        if confirmed is None:
            return await _failed(services, who, found, intent, error)
        after = confirmed
    detail = f"{display(name)}: {after.status}"
    if name is ProviderName.SOLAPI and after.status == "FAILED":
        detail += " (Solapi marks a cancelled group FAILED)"
    await services.db(
        services.store.close_intent,
        intent.id,
        [who.draft(Action.CANCELLED, Outcome.OK, provider=name, target=target, detail=detail)],
        [(send.id, SendState.CANCELLED.value, after.status)] if send else [],
    )
    if send is not None:
        await services.db(services.reminders.drop, send.id)  # a database transaction: off the event loop
        await refresh_card(services, send, f"Cancelled by <@{who.user}> at {when(services.now())} — {detail}")
        await close_for_send(services, send, f"Cancelled by <@{who.user}> at {when(services.now())}; not sent.")
    return CancelResult(target, name, Tone.OK, f"Cancelled {label}. The provider now says `{after.status}`.")


async def _confirm_after_error(found: Resolved, error: ProviderError) -> MessageState | None:
    """After a timeout or an unreadable answer, ask what really happened before saying it failed."""
    if not error.outcome_unknown:
        return None
    try:
        state = await found.provider.status(found.target)
    except ProviderError:
        return None
    return state if state.state in (SendState.CANCELLED, SendState.FAILED) else None


async def _failed(services: Services, who: Invoker, found: Resolved, intent: Intent,
                  error: ProviderError) -> CancelResult:
    name, target, send = found.provider_name, found.target, found.send
    text = describe_error(error)
    if name is ProviderName.SOLAPI and error.code == "InvalidStatus":
        text += await _solapi_hint(found)
    restore: list[tuple[str, str, str | None]] = []
    if send is not None:
        restore = [(send.id, send.state, None)]
    await services.db(
        services.store.close_intent,
        intent.id,
        [who.draft(Action.FAILED, Outcome.ERROR, provider=name, target=target,
                   detail=f"cancel failed: {ledger_detail(error)}")],
        restore,
    )
    return CancelResult(target, name, Tone.ERROR, f"Not cancelled. {text}")


async def _solapi_hint(found: Resolved) -> str:
    try:
        state = await found.provider.status(found.target)
    except ProviderError:
        return ""
    if state.state is SendState.PENDING:
        return (" The group is PENDING (never scheduled): Solapi cancels only SCHEDULED groups. "
                f"Use `/sms delete {found.target}` to discard it, or `/sms send {found.target}` to send it.")
    return f" The group is now {state.status}."


async def _status_or_stop(services: Services, who: Invoker, found: Resolved) -> MessageState:
    try:
        return await found.provider.status(found.target)
    except ProviderError as error:
        # every attempt is recorded, an id the provider does not know included
        what = "cancel failed" if error.kind is ErrorKind.NOT_FOUND else "cancel: could not read the send time"
        await services.db(services.store.record, who.draft(
            Action.FAILED, Outcome.ERROR, provider=found.provider_name, target=found.target,
            detail=f"{what}: {ledger_detail(error)}"))
        raise Stop(Reply(Tone.ERROR, f"Not cancelled. {describe_error(error)}")) from error


async def _refuse(services: Services, who: Invoker, found: Resolved, reason: str) -> None:
    await services.db(services.store.record, who.draft(
        Action.REFUSED, Outcome.REFUSED, provider=found.provider_name, target=found.target,
        detail=f"cancel refused: {reason}"))


async def already(services: Services, send: TrackedSend) -> str:
    """What already happened to a send that is no longer waiting."""
    label = f"{display(send.provider)} `{send.target}`"
    if send.state == CANCELLING:
        return f"{label} is being cancelled right now by someone else."
    last = await services.db(services.store.last_entry, send.target,
                             [Action.CANCELLED, Action.SENT, Action.DELETED, Action.FAILED])
    if last is not None and last.action in (Action.CANCELLED, Action.SENT, Action.DELETED):
        by = "the system" if last.actor == "system" else f"<@{last.actor}>"
        return f"{label} was already {last.action} by {by} at {when(last.at)}; nothing was changed."
    return f"{label} is `{send.provider_status or send.state}`; nothing was changed."


async def refresh_card(services: Services, send: TrackedSend, outcome: str) -> None:
    """Show the outcome on the channel notice of this send, without buttons."""
    if not send.notice_channel or not send.notice_ts:
        return
    batch = await services.db(services.store.batch, send.batch_id)
    if len(batch) > 1:
        waiting = sum(1 for s in batch if s.state in CANCELLABLE)
        if waiting:
            outcome += f" ({waiting} of {len(batch)} messages still scheduled)"
    card = card_for(batch or [send], CardKind.CLOSED if not any(s.state in CANCELLABLE for s in batch)
                    else CardKind.SCHEDULED, f"<@{send.created_by}> scheduled an SMS", send.batch_id, outcome)
    await services.notifier.update_card(send.notice_channel, send.notice_ts, card)

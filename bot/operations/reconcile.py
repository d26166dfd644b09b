"""After a crash: an intent without an outcome is settled by asking the provider what happened.

The outcome is recorded as actor `system`, with the action as it turned out, and the channel is
told. Only intents older than RECONCILE_AFTER are touched, so a call still in flight on another
replica is left alone."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from bot.operations.results import Card, CardKind
from bot.providers.base import ErrorKind, MessageState, ProviderError, ProviderName, SendState
from bot.providers.registry import display
from bot.services import Services
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, ApprovalState, Intent, Outcome

# The operation of an intent that stands for a whole Slack request (opened before its ack, closed
# after its answer): one left open means the user got the ack but never the answer.
REQUEST = "request"

log = logging.getLogger(__name__)

# For each operation: the provider states that mean it took effect, and the action it then was.
TOOK_EFFECT: dict[str, tuple[set[SendState], Action]] = {
    "cancel": ({SendState.CANCELLED}, Action.CANCELLED),
    "send": ({SendState.SENDING, SendState.SENT}, Action.SENT),
    "delete": ({SendState.DELETED}, Action.DELETED),
}


async def reconcile(services: Services, *, min_age: timedelta | None = None,
                    request_min_age: timedelta | None = None) -> int:
    """Settle every open intent old enough (RECONCILE_AFTER, or `min_age`; a whole-request record
    also at least `request_min_age`); returns how many were settled."""
    now = services.now()
    cutoff = now - (services.settings.reconcile_after if min_age is None else min_age)
    request_cutoff = min(cutoff, now - request_min_age) if request_min_age is not None else cutoff
    settled = 0
    intents = [i for i in await services.db(services.store.open_intents, cutoff)
               if i.operation != REQUEST or i.started_at <= request_cutoff]
    # Provider calls first, so the notice about an interrupted request can point at them ("above").
    intents.sort(key=lambda i: i.operation == REQUEST)
    for intent in intents:
        try:
            if await settle(services, intent):
                settled += 1
        except Exception:
            log.exception("could not settle intent", extra={"intent": intent.id})
    return settled


async def settle(services: Services, intent: Intent) -> bool:
    if intent.operation == REQUEST:
        return await _settle_request(services, intent)
    draft, state_update, message = await _outcome(services, intent)
    send = (await services.db(services.store.find_send, intent.target, intent.provider)
            if intent.target else None)
    updates = [(send.id, *state_update)] if send is not None and state_update is not None else []
    # Tell the channel before closing: a crash in between repeats the notice on the next start
    # rather than losing it (at least once; two replicas settling at once may both post it).
    channel = intent.channel or services.settings.sms_channel
    if channel:
        await services.notifier.post_text(channel, message)
    if intent.operation == "send" and intent.payload:  # idempotent: before the close, for the same reason
        approval_state = ApprovalState.APPROVED if draft.action == Action.SENT else ApprovalState.FAILED
        await services.db(services.store.finish_approval, intent.payload, approval_state)
    if not await services.db(services.store.close_intent, intent.id, [draft], updates):
        return False  # another replica settled it
    if send is not None and state_update is not None and SendState(state_update[0]).is_final:
        await services.db(services.reminders.drop, send.id)  # a transaction: off the event loop
    if channel:
        if send is not None and send.notice_channel and send.notice_ts and SendState(
                state_update[0] if state_update else "unknown") is SendState.CANCELLED:
            await services.notifier.update_card(send.notice_channel, send.notice_ts, Card(
                CardKind.CLOSED, send.batch_id, send.provider, [send.target], send.send_at, send.recipient_count,
                send.text_preview, send.created_by, f"<@{send.created_by}> scheduled an SMS",
                outcome=f"Cancelled (confirmed by the provider after a restart): {display(send.provider)}"))
    return True


async def _outcome(services: Services, intent: Intent) -> tuple[EntryDraft, tuple[str, str | None] | None, str]:
    who = f"<@{intent.actor}>"
    what = f"{intent.operation} of {display(intent.provider)} `{intent.target or '(new message)'}`"

    def entry(action: str, outcome: str, detail: str) -> EntryDraft:
        return EntryDraft(actor=SYSTEM_ACTOR, action=action, outcome=outcome, channel=intent.channel,
                          team=intent.team, provider=intent.provider, target=intent.target, detail=detail)

    if intent.operation not in TOOK_EFFECT or not intent.target:
        detail = (f"interrupted {intent.operation} requested by {intent.actor} ({intent.payload}); the bot cannot "
                  "tell whether the provider acted: check the provider's console")
        return (entry(Action.FAILED, Outcome.ERROR, detail), None,
                f"⚠️ The bot restarted during {who}'s {what}; check the provider's console: it may have gone "
                "through.")
    provider = services.providers.get(ProviderName(intent.provider))
    if provider is None:
        detail = f"interrupted {intent.operation} by {intent.actor}; {intent.provider} is no longer configured"
        return (entry(Action.FAILED, Outcome.ERROR, detail), None,
                f"⚠️ The bot restarted during {who}'s {what} and can't check it now.")
    try:
        state: MessageState | None = await provider.status(intent.target)
    except ProviderError as error:
        if error.kind is ErrorKind.NOT_FOUND and intent.operation == "delete":
            state = MessageState(intent.provider, intent.target, SendState.DELETED, "not found")
        elif (error.kind is ErrorKind.NOT_FOUND and intent.operation == "cancel"
              and intent.provider == ProviderName.HIGHLEVEL):
            # HighLevel removes a scheduled message once it is cancelled: gone after our cancel
            # means the cancel went through (see bot/providers/highlevel.py).
            state = MessageState(intent.provider, intent.target, SendState.CANCELLED, "not found")
        else:
            raise
    assert state is not None
    effect_states, action = TOOK_EFFECT[intent.operation]
    if state.state in effect_states or (intent.operation == "cancel" and intent.provider == ProviderName.SOLAPI
                                        and state.state is SendState.FAILED):
        detail = (f"reconciled after a restart: {intent.operation} requested by {intent.actor} went through; "
                  f"{display(intent.provider)} says {state.status}")
        tracked = SendState.CANCELLED.value if action is Action.CANCELLED else state.state.value
        return (entry(action, Outcome.OK, detail), (tracked, state.status),
                f"✅ After a restart: {who}'s {what} went through ({display(intent.provider)} says "
                f"`{state.status}`).")
    detail = (f"reconciled after a restart: {intent.operation} requested by {intent.actor} did not happen; "
              f"{display(intent.provider)} says {state.status}")
    return (entry(Action.FAILED, Outcome.ERROR, detail),
            (state.state.value, state.status),
            f"⚠️ After a restart: {who}'s {what} did not go through ({display(intent.provider)} says "
            f"`{state.status}`). Ask again if it is still wanted.")


async def _settle_request(services: Services, intent: Intent) -> bool:
    """A request acked but never answered: tell its channel what was recorded for it."""
    try:
        info = json.loads(intent.payload or "{}")
    except ValueError:
        info = {}
    rid = str(info.get("request_id") or "") if isinstance(info, dict) else ""
    what = str(info.get("what") or "a request") if isinstance(info, dict) else "a request"
    done = await services.db(services.store.entries_for_request, rid) if rid else []
    if done:
        recorded = "Recorded for it before the restart: " + "; ".join(
            f"{e.action} {display(e.provider or '')} `{e.target or '-'}` ({e.outcome})" for e in done) + "."
    else:
        recorded = "Nothing was recorded for it before the restart."
    ref = f" (ref `{rid}`)" if rid else ""
    message = (f"⚠️ The bot restarted while handling <@{intent.actor}>'s {what}{ref}, before it could answer. "
               f"{recorded} Any provider call it had in flight is reported above; ask again for anything "
               "still wanted.")
    log.info("reported an interrupted request", extra={"intent": intent.id, "request": rid})
    channel = intent.channel or services.settings.sms_channel
    if channel:  # before the close, as in settle(): at least once
        await services.notifier.post_text(channel, message)
    return bool(await services.db(services.store.close_intent, intent.id))

"""After a crash: an intent without an outcome is settled by asking the provider what happened.

The outcome is recorded as actor `system`, with the action as it turned out, and the channel is
told. Only intents older than RECONCILE_AFTER are touched, so a call still in flight on another
replica is left alone."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from bot.domain.results import Card, CardKind
from bot.operations.common import Invoker, describe_error, ledger_detail, when
from bot.operations.schedule import UNKNOWN_KIND, tracked_send, unknown_intent
from bot.operations.services import Services
from bot.providers.base import (
    ErrorKind,
    MessageState,
    ProviderError,
    ProviderName,
    ScheduleOutcome,
    ScheduleRequest,
    SendState,
    repeats_schedule_safely,
)
from bot.providers.registry import display
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, ApprovalState, Intent, Outcome
from db.store import new_id

# The operation of an intent that stands for a whole Slack request (opened before its ack, closed
# after its answer): one left open means the user got the ack but never the answer.
REQUEST = "request"

log = logging.getLogger(__name__)

# Telnyx replays an Idempotency-Key's answer for 24 hours; past that, asking again could schedule twice.
REPEAT_WINDOW = timedelta(hours=23)

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
    # a request the inbox still holds (queued, or its worker died) is its worker's to settle
    held = await services.db(services.store.unsettled_request_ids)
    intents = [i for i in await services.db(services.store.open_intents, cutoff)
               if i.operation != REQUEST or (i.started_at <= request_cutoff and _request_id(i) not in held)]
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
    unknown = _unknown_schedule(intent)
    if unknown is not None:
        return await _settle_unknown_schedule(services, intent, unknown)
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
    await tell_interrupted(services, actor=intent.actor, channel=intent.channel, request_id=rid, what=what)
    log.info("reported an interrupted request", extra={"intent": intent.id, "request": rid})
    return bool(await services.db(services.store.close_intent, intent.id))


async def tell_interrupted(services: Services, *, actor: str, channel: str | None, request_id: str,
                           what: str) -> None:
    """Tell the channel of a request acked but never answered (its worker died) what was recorded for it."""
    done = await services.db(services.store.entries_for_request, request_id) if request_id else []
    if done:
        recorded = "Recorded for it before the restart: " + "; ".join(
            f"{e.action} {display(e.provider or '')} `{e.target or '-'}` ({e.outcome})" for e in done) + "."
    else:
        recorded = "Nothing was recorded for it before the restart."
    ref = f" (ref `{request_id}`)" if request_id else ""
    message = (f"⚠️ The bot restarted while handling <@{actor}>'s {what}{ref}, before it could answer. "
               f"{recorded} Any provider call it had in flight is reported above; ask again for anything "
               "still wanted.")
    channel = channel or services.settings.sms_channel
    if channel:  # before the caller closes the record, as in settle(): at least once
        await services.notifier.post_text(channel, message)


def _request_id(intent: Intent) -> str:
    try:
        info = json.loads(intent.payload or "{}")
    except ValueError:
        return ""
    return str(info.get("request_id") or "") if isinstance(info, dict) else ""


def _unknown_schedule(intent: Intent) -> dict[str, Any] | None:
    """The payload of a schedule whose outcome was unknown (bot/operations/schedule.py), else None."""
    if intent.operation != "schedule" or not intent.payload.startswith("{"):
        return None
    try:
        info = json.loads(intent.payload)
    except ValueError:
        return None
    return info if isinstance(info, dict) and info.get("kind") == UNKNOWN_KIND else None


async def _settle_unknown_schedule(services: Services, intent: Intent, info: dict[str, Any]) -> bool:
    """Recipients whose schedule may or may not have been taken. A provider that honours the request's
    key (Telnyx) is asked again with the same key: its answer is the truth (a replay of the first
    success, or a first success now, or a refusal). Any other provider cannot be asked safely: the
    channel is told to check its console, and the ledger says the outcome is unknown."""
    recipients = tuple(str(r) for r in info.get("to") or ())
    text = str(info.get("text") or "")
    send_at = datetime.fromisoformat(str(info["send_at"]))
    batch_id = str(info.get("batch_id") or new_id())
    first_at = datetime.fromisoformat(str(info["first_at"])) if info.get("first_at") else intent.started_at
    if first_at.tzinfo is None:
        first_at = first_at.replace(tzinfo=send_at.tzinfo)
    who = Invoker(user=intent.actor, team=intent.team, channel=intent.channel)
    channel = intent.channel or services.settings.sms_channel
    label = display(intent.provider)
    shown = ", ".join(recipients[:5]) + (f" and {len(recipients) - 5} more" if len(recipients) > 5 else "")

    def entry(action: str, outcome: str, detail: str, target: str | None = None) -> EntryDraft:
        return EntryDraft(actor=SYSTEM_ACTOR, action=action, outcome=outcome, channel=intent.channel,
                          team=intent.team, provider=intent.provider, target=target, detail=detail)

    provider = services.providers.get(ProviderName(intent.provider))
    if (provider is None or not repeats_schedule_safely(provider) or not info.get("key")
            or services.now() - first_at > REPEAT_WINDOW):
        detail = (f"outcome unknown: schedule to {len(recipients)} recipient(s) ({shown}) at {when(send_at)} "
                  f"requested by {intent.actor}; {label} cannot be asked again safely: check its console")
        if channel:
            await services.notifier.post_text(channel, (
                f"⚠️ <@{intent.actor}>'s schedule with {label} for {when(send_at)} to {shown} is still unknown: "
                f"the bot cannot tell whether {label} took it. Check {label}'s console before scheduling "
                "it again."))
        return bool(await services.db(services.store.close_intent, intent.id, [entry(Action.FAILED, Outcome.ERROR,
                                                                                      detail)]))

    request = ScheduleRequest(to=recipients, text=text, send_at=send_at, sender=info.get("sender"),
                              key=str(info["key"]))
    try:
        outcome = await provider.schedule(request)
    except ProviderError as error:
        if error.outcome_unknown:
            log.info("schedule still unknown", extra={"intent": intent.id, "error": str(error)})
            return False  # still no answer: the next round asks again, with the same key
        outcome = ScheduleOutcome(scheduled=[], failed=[(r, error) for r in recipients])
    now = services.now()
    sends = [tracked_send(state, batch_id, who, text, send_at, recipients, now) for state in outcome.scheduled]
    drafts = [entry(Action.SCHEDULED, Outcome.OK,
                    f"reconciled: schedule requested by {intent.actor}: {s.recipient_count} recipient(s) at "
                    f"{when(s.send_at)}: {s.provider_status}", s.target) for s in sends]
    drafts += [entry(Action.FAILED, Outcome.ERROR, f"reconciled: schedule to {recipient} requested by "
                     f"{intent.actor} was not taken: {ledger_detail(error)}")
               for recipient, error in outcome.failed]
    if outcome.unknown:
        rest = unknown_intent(who, intent.provider, request, [r for r, _ in outcome.unknown], batch_id, now)
        payload = json.loads(rest.payload)
        payload["first_at"] = first_at.isoformat()  # the key's replay window runs from the first attempt
        rest.payload = json.dumps(payload, ensure_ascii=False)
        await services.db(services.store.open_intent, rest)
    if channel:
        lines = [f"After checking: <@{intent.actor}>'s schedule with {label} for {when(send_at)}:"]
        lines += [f"• scheduled `{s.target}` to {s.recipients_preview}" for s in sends]
        lines += [f"• not scheduled for {r}: {describe_error(e)}" for r, e in outcome.failed]
        lines += [f"• still unknown for {r}: {describe_error(e)}" for r, e in outcome.unknown]
        await services.notifier.post_text(channel, "\n".join(lines))
    if not await services.db(services.store.close_intent, intent.id, drafts, (), sends):
        return False
    for send in sends:
        await services.db(services.reminders.plan, send)
    return True

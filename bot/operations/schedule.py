"""/sms schedule and /sms track: a send the bot will follow, remind about and let people cancel."""

from __future__ import annotations

import json
from datetime import datetime

from bot.domain import commands, policy
from bot.domain.results import CardKind, Reply, Tone
from bot.operations import guard
from bot.operations.common import Invoker, Stop, card_for, describe_error, ledger_detail, provider_for, when
from bot.operations.services import Services
from bot.providers.base import (
    MessageState,
    ProviderError,
    ProviderName,
    ScheduleOutcome,
    ScheduleRequest,
    SendState,
    repeats_schedule_safely,
)
from bot.providers.registry import display
from db.models import Action, Intent, Outcome, TrackedSend
from db.store import new_id


def _preview(text: str, limit: int = 280) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _recipients_preview(recipients: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(recipients[:5])
    return shown + (f" and {len(recipients) - 5} more" if len(recipients) > 5 else "")


async def schedule(services: Services, who: Invoker, cmd: commands.Schedule) -> Reply:
    name = cmd.provider
    try:
        provider = provider_for(services, name)
    except Stop as stop:
        return stop.reply
    from bot.domain.held_window import beyond_window  # held builds on this module's helpers
    from bot.operations import held_approval

    beyond = beyond_window(name, cmd.send_at, services.now())
    window = policy.schedule_window(name, cmd.send_at, services.now())
    if not window.allowed and not beyond:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=name, detail=f"schedule refused: {window.reason}"))
        return Reply(Tone.REFUSED, f"Not scheduled: {window.reason}.")
    refusal = await guard.check_send(services, who, guard.SendPlan("schedule", name, cmd.to, cmd.send_at),
                                     cmd.override)
    if refusal is not None:
        return refusal.reply("Not scheduled")
    held_for_approval = await held_approval.schedule_hold(services, who, cmd)  # SMS_POLICY_FILE's rules
    if held_for_approval is not None:
        return held_for_approval
    if beyond:
        from bot.operations.held import hold_beyond_window

        return await hold_beyond_window(services, who, cmd)

    intent = Intent(id=new_id(), operation="schedule", provider=name, actor=who.user, team=who.team,
                    channel=who.channel, payload=f"{len(cmd.to)} recipients at {cmd.send_at.isoformat()}",
                    started_at=services.now())
    await services.db(services.store.open_intent, intent)
    # The intent's id is the request's key: every later attempt for it (a reconciliation) reuses it.
    request = ScheduleRequest(to=cmd.to, text=cmd.text, send_at=cmd.send_at, key=intent.id)
    try:
        outcome = await provider.schedule(request)
    except ProviderError as error:
        if not error.outcome_unknown:
            await services.db(services.store.close_intent, intent.id, [who.draft(
                Action.FAILED, Outcome.ERROR, provider=name,
                detail=f"schedule to {len(cmd.to)} recipient(s) failed: {ledger_detail(error)}")])
            return Reply(Tone.ERROR, f"Not scheduled. {describe_error(error)}")
        # The provider may have taken all of it: nothing is said to have failed.
        outcome = ScheduleOutcome(scheduled=[], unknown=[(recipient, error) for recipient in cmd.to])

    batch_id = new_id()
    now = services.now()
    channel = who.channel
    sends = [tracked_send(state, batch_id, who, cmd.text, cmd.send_at, cmd.to, now) for state in outcome.scheduled]
    drafts = [who.draft(Action.SCHEDULED, Outcome.OK, provider=name, target=s.target,
                        detail=f"{s.recipient_count} recipient(s) at {when(s.send_at)}: {s.provider_status}")
              for s in sends]
    drafts += [who.draft(Action.FAILED, Outcome.ERROR, provider=name,
                         detail=f"schedule to {recipient} failed: {ledger_detail(error)}")
               for recipient, error in outcome.failed]
    if outcome.unknown:
        # Opened before the first intent closes: a crash in between leaves both open, never neither.
        await services.db(services.store.open_intent, unknown_intent(
            who, name, request, [recipient for recipient, _ in outcome.unknown], batch_id, services.now()))
    await services.db(services.store.close_intent, intent.id, drafts, (), sends)
    for send in sends:
        await services.db(services.reminders.plan, send)  # a job-store write: off the event loop

    notice_channel = channel or services.settings.sms_channel
    if notice_channel and sends:
        card = card_for(sends, CardKind.SCHEDULED, f"<@{who.user}> scheduled an SMS", batch_id)
        ts = await services.notifier.post_card(notice_channel, card)
        if ts:
            await services.db(services.store.set_notice, batch_id, notice_channel, ts)

    details = [f"Not scheduled for {recipient}: {describe_error(error)}" for recipient, error in outcome.failed]
    details += [f"Unknown, checking: {recipient}: {describe_error(error)}" for recipient, error in outcome.unknown]
    if outcome.unknown:
        details.append(_unknown_advice(provider, name))
    if not sends:
        text = (f"Unknown, checking: {display(name)} may or may not have scheduled it for "
                f"{len(outcome.unknown)} recipient(s); nothing is known to be scheduled yet.")
        return Reply(Tone.INFO, text, details)
    count = sum(s.recipient_count for s in sends)
    ids = ", ".join(f"`{s.target}`" for s in sends[:10]) + (" …" if len(sends) > 10 else "")
    text = (f"Scheduled with {display(name)} for {when(cmd.send_at)} to {count} recipient(s): {ids}.")
    return Reply(Tone.OK if not outcome.failed and not outcome.unknown else Tone.INFO, text, details)


UNKNOWN_KIND = "schedule-unknown"  # the payload kind of an intent that keeps an unsettled schedule


def unknown_intent(who: Invoker, name: str, request: ScheduleRequest, recipients: list[str], batch_id: str,
                   now: datetime) -> Intent:
    """An open intent holding what is needed to settle recipients whose schedule outcome is unknown:
    the same request (and key), so a provider that honours the key can be asked again."""
    payload = {"kind": UNKNOWN_KIND, "key": request.key, "to": recipients, "text": request.text,
               "send_at": request.send_at.isoformat(), "sender": request.sender, "batch_id": batch_id}
    return Intent(id=new_id(), operation="schedule", provider=name, actor=who.user, team=who.team,
                  channel=who.channel, payload=json.dumps(payload, ensure_ascii=False), started_at=now)


def _unknown_advice(provider: object, name: str) -> str:
    if repeats_schedule_safely(provider):
        return (f"The bot will ask {display(name)} again with the same idempotency key (it cannot schedule "
                "twice) and post the outcome here. Don't schedule these again meanwhile.")
    return (f"{display(name)} cannot be asked safely again: check its console before scheduling these again; "
            "the bot posts here what it can find out.")


def tracked_send(state: MessageState, batch_id: str, who: Invoker, text: str, send_at: datetime,
                 to: tuple[str, ...] | list[str], now: datetime) -> TrackedSend:
    recipients = state.recipients or tuple(to)
    return TrackedSend(
        id=new_id(), provider=state.provider, target=state.id, batch_id=batch_id,
        state=state.state.value if state.state is not SendState.UNKNOWN else SendState.SCHEDULED.value,
        # the time asked for when the provider's answer shows none (Telnyx's payload has no send_at)
        provider_status=state.status, send_at=state.send_at or send_at,
        recipient_count=state.recipient_count or len(recipients),
        recipients_preview=_recipients_preview(list(recipients)), text_preview=_preview(text),
        created_by=who.user, team=who.team, channel=who.channel,
        created_at=now, updated_at=now,
    )


async def track(services: Services, who: Invoker, cmd: commands.Track) -> Reply:
    try:
        provider = provider_for(services, cmd.provider)
    except Stop as stop:
        return stop.reply
    target = cmd.target.id
    existing = await services.db(services.store.find_send, target, cmd.provider)
    if existing is not None and existing.state in ("scheduled", "pending"):
        return Reply(Tone.INFO, f"Already following {display(cmd.provider)} `{target}` "
                                f"(since <@{existing.created_by}> added it).")
    try:
        state = await provider.status(target)
    except ProviderError as error:
        return Reply(Tone.ERROR, f"Not tracked. {describe_error(error)}")
    if state.state not in (SendState.SCHEDULED, SendState.PENDING):
        return Reply(Tone.INFO, f"{display(cmd.provider)} `{target}` is `{state.status}`: "
                                "there is no upcoming send to follow.")
    now = services.now()
    send = TrackedSend(
        id=new_id(), provider=cmd.provider, target=target, batch_id=new_id(), state=state.state.value,
        provider_status=state.status, send_at=state.send_at, recipient_count=state.recipient_count
        or len(state.recipients), recipients_preview=_recipients_preview(list(state.recipients)),
        text_preview=_preview(state.text or ""), created_by=who.user, team=who.team, channel=who.channel,
        created_at=now, updated_at=now,
    )
    draft = who.draft(Action.TRACKED, Outcome.OK, provider=cmd.provider, target=target,
                      detail=f"{state.status}, send time {when(state.send_at)}")
    await services.db(services.store.add_sends, [send], [draft])
    await services.db(services.reminders.plan, send)  # a job-store write: off the event loop (no-op if None)
    if state.send_at is None:
        return Reply(Tone.OK, f"Following {display(cmd.provider)} `{target}`: `{state.status}`, to "
                              f"{send.recipient_count} recipient(s); the send time is unknown "
                              f"({display(cmd.provider)} does not show it).",
                     unknown_send_time_notes(cmd.provider))
    return Reply(Tone.OK, f"Following {display(cmd.provider)} `{target}`: `{state.status}`, "
                          f"goes out {when(state.send_at)} to {send.recipient_count} recipient(s).")


def unknown_send_time_notes(provider: ProviderName) -> list[str]:
    """What a tracked send without a known send time means for the person who tracked it. Telnyx's and
    HighLevel's GET show no send time (neither spec lists one), so a message scheduled elsewhere has none."""
    notes = ["No reminders until the send time is known: reminders are planned from it."]
    if provider is ProviderName.TELNYX:
        notes.append("The bot cannot apply Telnyx's one-minute cancel guard: a cancel is attempted, and "
                     "Telnyx's own refusal, if any, is shown and recorded.")
    return notes

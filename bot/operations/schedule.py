"""/sms schedule and /sms track: a send the bot will follow, remind about and let people cancel."""

from __future__ import annotations

from bot import commands, policy
from bot.operations.common import Invoker, Stop, card_for, describe_error, ledger_detail, provider_for, when
from bot.operations.results import CardKind, Reply, Tone
from bot.providers.base import MessageState, ProviderError, ScheduleRequest, SendState
from bot.providers.registry import display
from bot.services import Services
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
    window = policy.schedule_window(name, cmd.send_at, services.now())
    if not window.allowed:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=name, detail=f"schedule refused: {window.reason}"))
        return Reply(Tone.REFUSED, f"Not scheduled: {window.reason}.")

    intent = Intent(id=new_id(), operation="schedule", provider=name, actor=who.user, team=who.team,
                    channel=who.channel, payload=f"{len(cmd.to)} recipients at {cmd.send_at.isoformat()}",
                    started_at=services.now())
    await services.db(services.store.open_intent, intent)
    request = ScheduleRequest(to=cmd.to, text=cmd.text, send_at=cmd.send_at)
    try:
        outcome = await provider.schedule(request)
    except ProviderError as error:
        await services.db(services.store.close_intent, intent.id, [who.draft(
            Action.FAILED, Outcome.ERROR, provider=name,
            detail=f"schedule to {len(cmd.to)} recipient(s) failed: {ledger_detail(error)}")])
        hint = ""
        if error.outcome_unknown:
            hint = " The provider may or may not have taken it: check the provider's console before trying again."
        return Reply(Tone.ERROR, f"Not scheduled. {describe_error(error)}{hint}")

    batch_id = new_id()
    now = services.now()
    channel = who.channel
    sends = [_tracked(state, batch_id, who, cmd, now) for state in outcome.scheduled]
    drafts = [who.draft(Action.SCHEDULED, Outcome.OK, provider=name, target=s.target,
                        detail=f"{s.recipient_count} recipient(s) at {when(s.send_at)}: {s.provider_status}")
              for s in sends]
    drafts += [who.draft(Action.FAILED, Outcome.ERROR, provider=name,
                         detail=f"schedule to {recipient} failed: {ledger_detail(error)}")
               for recipient, error in outcome.failed]
    await services.db(services.store.close_intent, intent.id, drafts, (), sends)
    for send in sends:
        await services.db(services.reminders.plan, send)  # a job-store write: off the event loop

    notice_channel = channel or services.settings.sms_channel
    if notice_channel and sends:
        card = card_for(sends, CardKind.SCHEDULED, f"<@{who.user}> scheduled an SMS", batch_id)
        ts = await services.notifier.post_card(notice_channel, card)
        if ts:
            await services.db(services.store.set_notice, batch_id, notice_channel, ts)

    count = sum(s.recipient_count for s in sends)
    ids = ", ".join(f"`{s.target}`" for s in sends[:10]) + (" …" if len(sends) > 10 else "")
    text = (f"Scheduled with {display(name)} for {when(cmd.send_at)} to {count} recipient(s): {ids}.")
    details = [f"Not scheduled for {recipient}: {describe_error(error)}" for recipient, error in outcome.failed]
    return Reply(Tone.OK if not outcome.failed else Tone.INFO, text, details)


def _tracked(state: MessageState, batch_id: str, who: Invoker, cmd: commands.Schedule,
             now: object) -> TrackedSend:
    recipients = state.recipients or cmd.to
    return TrackedSend(
        id=new_id(), provider=state.provider, target=state.id, batch_id=batch_id,
        state=state.state.value if state.state is not SendState.UNKNOWN else SendState.SCHEDULED.value,
        provider_status=state.status, send_at=state.send_at or cmd.send_at,
        recipient_count=state.recipient_count or len(recipients),
        recipients_preview=_recipients_preview(list(recipients)), text_preview=_preview(cmd.text),
        created_by=who.user, team=who.team, channel=who.channel,
        created_at=now, updated_at=now,  # type: ignore[arg-type]
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
    await services.db(services.reminders.plan, send)  # a job-store write: off the event loop
    return Reply(Tone.OK, f"Following {display(cmd.provider)} `{target}`: `{state.status}`, "
                          f"goes out {when(state.send_at)} to {send.recipient_count} recipient(s).")

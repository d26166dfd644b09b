"""/sms send asks for approval; one click on Approve sends the Solapi group, exactly once."""

from __future__ import annotations

from bot.domain.ids import TargetRef
from bot.domain.results import Card, CardKind, Reply, Tone
from bot.operations import guard
from bot.operations.common import Invoker, Stop, card_for, describe_error, ledger_detail, resolve, when
from bot.operations.services import Services
from bot.providers.base import ProviderError, ProviderName, SendState
from bot.providers.registry import display
from db.models import Action, Approval, ApprovalState, Intent, Outcome, TrackedSend
from db.store import new_id


async def request_send(services: Services, who: Invoker, ref: TargetRef, override: bool = False) -> Reply:
    try:
        found = await resolve(services, ref)
    except Stop as stop:
        return stop.reply
    if found.provider_name is not ProviderName.SOLAPI:
        return Reply(Tone.ERROR, f"`/sms send` sends a prepared Solapi group; {display(found.provider_name)} "
                                 "messages are sent by scheduling them.")
    try:
        state = await found.provider.status(found.target)
    except ProviderError as error:
        return Reply(Tone.ERROR, describe_error(error))
    if state.state is not SendState.PENDING:
        return Reply(Tone.REFUSED, f"Solapi `{found.target}` is `{state.status}`: only a PENDING group can be "
                                   "sent (Solapi's rule).")
    refusal = await guard.check_send(services, who, guard.SendPlan(
        "send", found.provider_name, tuple(state.recipients), services.now(),
        count=state.recipient_count or None, target=found.target), override)
    if refusal is not None:
        return refusal.reply("Not sent")
    now = services.now()
    send = found.send
    if send is None:
        send = TrackedSend(
            id=new_id(), provider=found.provider_name, target=found.target, batch_id=new_id(),
            state=SendState.PENDING.value, provider_status=state.status, send_at=None,
            recipient_count=state.recipient_count or len(state.recipients),
            recipients_preview=", ".join(state.recipients[:5]), text_preview=(state.text or "")[:280],
            created_by=who.user, team=who.team, channel=who.channel, created_at=now, updated_at=now,
        )
    else:
        open_one = await services.db(services.store.open_approval_for, send.id)
        if open_one is not None and open_one.expires_at > now:
            return Reply(Tone.INFO, f"An approval request for `{found.target}` is already open.")
        if open_one is not None and await services.db(services.store.expire_approval, open_one.id, now):
            await _update(services, open_one, send, f"Expired at {when(open_one.expires_at)}; not sent.")
    approval = Approval(
        id=new_id(), send_id=send.id, requested_by=who.user, team=who.team, channel=who.channel,
        state=ApprovalState.PENDING, expires_at=now + services.settings.approval_ttl, created_at=now,
    )
    from bot.operations.held_approval import send_needs  # SMS_POLICY_FILE's rules, when a file is set

    rules = send_needs(services, send)
    draft = who.draft(Action.APPROVAL_REQUESTED, Outcome.OK, provider=found.provider_name, target=found.target,
                      detail=f"{send.recipient_count} recipient(s); expires {when(approval.expires_at)}"
                             + (f"; {rules}" if rules else ""))
    await services.db(services.store.add_approval, approval, send if found.send is None else None, draft)
    channel = services.settings.sms_channel or who.channel
    if channel:
        card = approval_card(send, approval)
        if rules:
            card.outcome = f"Approval rules: {rules}."
        ts = await services.notifier.post_card(channel, card)
        if ts:
            await services.db(services.store.set_approval_message, approval.id, channel, ts)
    where = f" in <#{channel}>" if channel and channel != who.channel else ""
    return Reply(Tone.OK, f"Asked for approval to send Solapi `{found.target}` "
                          f"({send.recipient_count} recipient(s)){where}." + (f" {rules}." if rules else ""))


def approval_card(send: TrackedSend, approval: Approval, outcome: str | None = None) -> Card:
    kind = CardKind.APPROVAL if outcome is None else CardKind.CLOSED
    card = card_for([send], kind, f"<@{approval.requested_by}> asks to send an SMS group now", approval.id,
                    outcome)
    return card


async def decide(services: Services, who: Invoker, approval_id: str, approve: bool) -> Reply:
    """A click on Approve or Cancel of an approval request."""
    approval = await services.db(services.store.get_approval, approval_id)
    if approval is None:
        return Reply(Tone.ERROR, "This approval request is not in the ledger; nothing was done.")
    send = await services.db(services.store.get_send, approval.send_id)
    if send is None:
        return Reply(Tone.ERROR, "The send behind this request is gone from the ledger; nothing was done.")
    now = services.now()
    if approval.state == ApprovalState.CLOSED:
        return Reply(Tone.INFO, await _settled(services, send))
    if approval.state != ApprovalState.PENDING:
        return Reply(Tone.INFO, _already(approval))
    if send.state != SendState.PENDING.value:  # settled by another way (a delete, a cancel, a send)
        outcome = await _settled(services, send)
        await close_for_send(services, send, outcome)
        return Reply(Tone.INFO, outcome)
    if approval.expires_at <= now:
        if await services.db(services.store.expire_approval, approval.id, now):
            await _update(services, approval, send, f"Expired at {when(approval.expires_at)}; not sent.")
        return Reply(Tone.REFUSED, f"This request expired at {when(approval.expires_at)}; ask again with "
                                   f"`/sms send {send.target}`.")
    verb = "approve" if approve else "cancel"
    from bot.operations.held_approval import send_gate  # SMS_POLICY_FILE's rules, when a file is set

    by_rules = await send_gate(services, who, approval.id, approval.requested_by, send) if approve else False
    if isinstance(by_rules, Reply):
        return by_rules
    decision = (services.permissions.may_approve(who.user, approval.requested_by) if approve
                else services.permissions.may_cancel(who.user, approval.requested_by))
    if not decision.allowed and not by_rules:  # the rules' approvers, when rules apply
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=send.provider, target=send.target,
            detail=f"{verb} refused: {decision.reason}"))
        return Reply(Tone.REFUSED, f"You can't {verb} this: {decision.reason}.")

    if not approve:
        won = await services.db(services.store.claim_approval, approval.id, who.user, ApprovalState.CANCELLED, now,
                                who.draft(Action.CANCELLED, Outcome.OK, provider=send.provider, target=send.target,
                                          detail="approval request cancelled; the group stays PENDING"))
        if not won:
            return Reply(Tone.INFO, _already(await _fresh(services, approval)))
        await _update(services, approval, send, f"Cancelled by <@{who.user}> at {when(now)}; not sent.")
        return Reply(Tone.OK, f"Request to send {display(send.provider)} `{send.target}` cancelled; nothing was sent.")

    # The send's intent is opened with the claim, in one transaction (a crash cannot strand a claim).
    intent = Intent(id=new_id(), operation="send", provider=send.provider, target=send.target, actor=who.user,
                    team=who.team, channel=who.channel, payload=approval.id, started_at=now)
    configured = services.providers.get(ProviderName(send.provider)) is not None
    won = await services.db(services.store.claim_approval, approval.id, who.user, ApprovalState.CLAIMED, now,
                            who.draft(Action.APPROVED, Outcome.OK, provider=send.provider, target=send.target,
                                      detail=f"requested by {approval.requested_by}"),
                            intent if configured else None)
    if not won:
        return Reply(Tone.INFO, _already(await _fresh(services, approval)))
    return await _send(services, who, approval, send, intent)


async def _send(services: Services, who: Invoker, approval: Approval, send: TrackedSend, intent: Intent) -> Reply:
    """The approved send; `intent` was opened with the approval's claim."""
    try:
        provider = services.providers[ProviderName(send.provider)]
    except KeyError:
        await services.db(services.store.finish_approval, approval.id, ApprovalState.FAILED)
        return Reply(Tone.ERROR, f"{display(send.provider)} is not configured any more; nothing was sent.")
    try:
        after = await provider.send(send.target)
    except ProviderError as error:
        confirmed = None
        if error.outcome_unknown:  # never resend blindly: ask what happened
            try:
                state = await provider.status(send.target)
                confirmed = state if state.state in (SendState.SENDING, SendState.SENT) else None
            except ProviderError:
                confirmed = None
        if confirmed is None:
            # the approval first: a crash before the intent's close is then settled by reconciliation,
            # which sets the approval again from the provider's state (never left CLAIMED)
            await services.db(services.store.finish_approval, approval.id, ApprovalState.FAILED)
            await services.db(services.store.close_intent, intent.id, [who.draft(
                Action.FAILED, Outcome.ERROR, provider=send.provider, target=send.target,
                detail=f"send failed: {ledger_detail(error)}")])
            await _update(services, approval, send,
                          f"Approved by <@{who.user}>, but the send failed: {describe_error(error)}")
            return Reply(Tone.ERROR, f"Not sent. {describe_error(error)}")
        after = confirmed
    await services.db(services.store.finish_approval, approval.id, ApprovalState.APPROVED)  # first, as above
    await services.db(services.store.close_intent, intent.id, [who.draft(
        Action.SENT, Outcome.OK, provider=send.provider, target=send.target, detail=f"Solapi: {after.status}")],
        [(send.id, after.state.value, after.status)])
    await services.db(services.reminders.drop, send.id)  # a transaction: off the event loop
    await _update(services, approval, send,
                  f"Approved by <@{who.user}> at {when(services.now())} — sent; Solapi says `{after.status}`.")
    await close_for_send(services, send, f"Sent by <@{who.user}> through another request; nothing to decide.")
    return Reply(Tone.OK, f"Sent Solapi `{send.target}`; Solapi says `{after.status}`.")


async def close_for_send(services: Services, send: TrackedSend, outcome: str) -> None:
    """The group's fate was settled (deleted, cancelled, sent): close every request still open for it
    and take the buttons off their cards, so no later click can reach the provider."""
    for approval in await services.db(services.store.close_approvals_for, send.id, services.now()):
        await _update(services, approval, send, outcome)


async def _settled(services: Services, send: TrackedSend) -> str:
    """What the ledger says happened to a group whose request is closed."""
    last = await services.db(services.store.last_entry, send.target, [Action.DELETED, Action.CANCELLED, Action.SENT])
    label = f"{display(send.provider)} `{send.target}`"
    if last is None:
        return f"{label} is `{send.provider_status or send.state}`, no longer PENDING; nothing was sent."
    by = "the system" if last.actor == "system" else f"<@{last.actor}>"
    return f"{label} was already {last.action} by {by} at {when(last.at)}; this request is closed. Nothing was done."


def _already(approval: Approval) -> str:
    by = f"<@{approval.decided_by}>" if approval.decided_by else "nobody"
    match approval.state:
        case ApprovalState.CLAIMED:
            return f"{by} approved this a moment ago; it is being sent. Nothing more was done."
        case ApprovalState.APPROVED:
            return f"Already approved and sent by {by} at {when(approval.decided_at)}. Nothing more was done."
        case ApprovalState.CANCELLED:
            return f"Already cancelled by {by} at {when(approval.decided_at)}. Nothing was done."
        case ApprovalState.EXPIRED:
            return f"This request expired at {when(approval.expires_at)}. Nothing was done."
        case ApprovalState.FAILED:
            return f"{by} approved this, but the send failed. Nothing more was done."
    return "This request is no longer open."


async def _fresh(services: Services, approval: Approval) -> Approval:
    fresh: Approval | None = await services.db(services.store.get_approval, approval.id)
    return fresh or approval


async def _update(services: Services, approval: Approval, send: TrackedSend, outcome: str) -> None:
    fresh = await _fresh(services, approval)
    if fresh.message_channel and fresh.message_ts:
        await services.notifier.update_card(fresh.message_channel, fresh.message_ts,
                                            approval_card(send, fresh, outcome))

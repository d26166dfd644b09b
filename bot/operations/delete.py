"""/sms delete: discard a PENDING Solapi group (Solapi deletes nothing else)."""

from __future__ import annotations

from bot.domain.ids import TargetRef
from bot.domain.results import Reply, Tone
from bot.operations.approval import close_for_send
from bot.operations.common import Invoker, Stop, describe_error, ledger_detail, resolve, when
from bot.operations.services import Services
from bot.providers.base import ProviderError, ProviderName, SendState
from bot.providers.registry import display
from db.models import Action, Intent, Outcome
from db.store import new_id


async def delete(services: Services, who: Invoker, ref: TargetRef) -> Reply:
    try:
        found = await resolve(services, ref)
    except Stop as stop:
        return stop.reply
    name, target, send = found.provider_name, found.target, found.send
    if name is not ProviderName.SOLAPI:
        return Reply(Tone.ERROR, f"Only Solapi groups can be deleted; for {display(name)} use "
                                 f"`/sms cancel {target}`.")
    decision = services.permissions.may_delete(who.user, send.created_by if send else None)
    if not decision.allowed:
        await services.db(services.store.record, who.draft(
            Action.REFUSED, Outcome.REFUSED, provider=name, target=target, detail=f"delete refused: {decision.reason}"))
        return Reply(Tone.REFUSED, f"Not deleted: {decision.reason}.")
    intent = Intent(id=new_id(), operation="delete", provider=name, target=target, actor=who.user, team=who.team,
                    channel=who.channel, started_at=services.now())
    await services.db(services.store.open_intent, intent)
    try:
        after = await found.provider.delete(target)
    except ProviderError as error:
        text = describe_error(error)
        if error.code == "NotOperationalStatus":
            text += " Solapi deletes only PENDING groups; a SCHEDULED group must be cancelled instead."
        await services.db(services.store.close_intent, intent.id, [who.draft(
            Action.FAILED, Outcome.ERROR, provider=name, target=target,
            detail=f"delete failed: {ledger_detail(error)}")])
        return Reply(Tone.ERROR, f"Not deleted. {text}")
    await services.db(services.store.close_intent, intent.id, [who.draft(
        Action.DELETED, Outcome.OK, provider=name, target=target, detail=f"Solapi: {after.status}")],
        [(send.id, SendState.DELETED.value, after.status)] if send else [])
    if send is not None:
        await services.db(services.reminders.drop, send.id)  # a transaction: off the event loop
        await close_for_send(services, send, f"Deleted by <@{who.user}> at {when(services.now())}; not sent.")
    return Reply(Tone.OK, f"Deleted Solapi group `{target}`; it can no longer be sent.")

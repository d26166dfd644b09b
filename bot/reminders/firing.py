"""Firing a reminder: deciding from the ledger and the provider what to do, claiming it (once across
replicas), posting it, and noting sends that changed at the provider behind the bot's back."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from bot.domain import policy
from bot.domain.durations import format_duration
from bot.domain.results import CardKind
from bot.infra.metrics import REMINDERS
from bot.operations.common import card_for, ledger_detail, when
from bot.providers.base import MessageState, ProviderError, ProviderName, SendState
from bot.providers.registry import display
from bot.reminders.jobs import job_id
from bot.reminders.planner import Planner
from db.ledger import EntryDraft
from db.models import SYSTEM_ACTOR, Action, Outcome, TrackedSend
from db.store import UPCOMING_STATES

log = logging.getLogger(__name__)

MAX_CHECKS = 25  # provider status calls before one reminder (a Telnyx batch may hold thousands)
CHECK_CONCURRENCY = 5

# Still waiting at the provider: a reminder makes sense. UNKNOWN: the provider could not say; remind.
_WAITING = {SendState.SCHEDULED, SendState.PENDING, SendState.UNKNOWN}
# What the provider's word means for the ledger when a send changed behind the bot's back.
_SEEN_AS: dict[SendState, tuple[Action, Outcome]] = {
    SendState.SENDING: (Action.SENT, Outcome.OK),
    SendState.SENT: (Action.SENT, Outcome.OK),
    SendState.CANCELLED: (Action.CANCELLED, Outcome.OK),
    SendState.DELETED: (Action.DELETED, Outcome.OK),
    SendState.FAILED: (Action.FAILED, Outcome.ERROR),
}



@dataclass(frozen=True)
class _Seen:
    send: TrackedSend
    state: MessageState | None = None
    error: str | None = None


class Firing(Planner):
    """Runs a reminder job: decide, claim, post."""

    async def fire(self, batch_id: str, lead_seconds: int) -> str:
        """Decide and do: returns posted, missed, skipped, superseded, gone or claimed-elsewhere."""
        try:
            outcome = await self._fire(batch_id, lead_seconds)
        finally:
            self.running_jobs(discard=job_id(batch_id, lead_seconds))
        log.info("reminder fired", extra={"batch": batch_id, "lead": lead_seconds, "outcome": outcome})
        return outcome

    async def _fire(self, batch_id: str, lead_seconds: int) -> str:
        services = self.services
        lead_text = format_duration(timedelta(seconds=lead_seconds))
        sends = await services.db(services.store.batch, batch_id)
        waiting = [s for s in sends if s.state in UPCOMING_STATES and s.send_at is not None]
        if not waiting:  # cancelled, sent, deleted: the ledger says so already
            await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", None)
            return "gone"
        first = waiting[0]
        send_at = min(s.send_at for s in waiting if s.send_at is not None)
        channel = first.channel or services.settings.sms_channel
        now = services.now()

        def note(action: Action, outcome: Outcome, detail: str, target: str = first.target) -> EntryDraft:
            return EntryDraft(actor=SYSTEM_ACTOR, action=action, outcome=outcome, channel=channel,
                              team=first.team, provider=first.provider, target=target, detail=detail)

        if send_at <= now:
            due = send_at - timedelta(seconds=lead_seconds)
            draft = note(Action.REMINDED, Outcome.ERROR, f"{lead_text} reminder missed: it was due at "
                         f"{when(due)} while the bot was not running; the send time {when(send_at)} passed")
            if await services.db(services.store.claim_reminder, batch_id, lead_seconds, "missed", draft):
                REMINDERS.labels(outcome="missed").inc()
                return "missed"
            return "claimed-elsewhere"

        if any(lead < lead_seconds and send_at - timedelta(seconds=lead) <= now for lead in self.leads):
            # A shorter lead is due too (the bot was down over both): that one speaks for both.
            await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", None)
            return "superseded"

        seen = await self._check(waiting)
        gone = [s for s in seen if s.state is not None and s.state.state not in _WAITING]
        still = [s for s in seen if s.state is None or s.state.state in _WAITING]
        still += [_Seen(s) for s in waiting[len(seen):]]  # beyond MAX_CHECKS: not asked
        for s in gone:
            await self._note_change(s, lead_text)
        if gone:
            await self._refresh_notice([s.send for s in gone])

        if not still:
            said = ", ".join(f"`{s.state.status}`" for s in gone if s.state is not None)
            log.info("no reminder: the provider says the send is no longer scheduled",
                     extra={"batch": batch_id, "status": said})
            if await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", None):
                REMINDERS.labels(outcome="skipped").inc()
                self.remove_batch(batch_id)
                return "skipped"
            return "claimed-elsewhere"

        if not channel:
            draft = note(Action.REMINDED, Outcome.ERROR, f"{lead_text} reminder not posted: the send was "
                         "made outside a channel and SMS_CHANNEL is not set")
            await services.db(services.store.claim_reminder, batch_id, lead_seconds, "skipped", draft)
            REMINDERS.labels(outcome="skipped").inc()
            return "skipped"

        sends_left = [s.send for s in still]
        send_at = min((s.send_at for s in sends_left if s.send_at is not None), default=send_at)
        card = card_for(sends_left, CardKind.REMINDER,
                        f"your SMS goes out in {format_duration(send_at - now)}", batch_id)
        card.mention_owner = True
        if first.provider == ProviderName.TELNYX:
            guard = policy.telnyx_cancel(send_at, now, services.settings.telnyx_cancel_guard)
            if not guard.allowed:
                card.cancel_blocked = f"Cancel is not offered: {guard.reason}."
        problems = [f"{display(s.send.provider)} `{s.send.target}`: {s.error}" for s in still if s.error]
        if problems:
            card.outcome = "⚠️ Could not check with the provider just now — " + "; ".join(problems[:3])
        detail = (f"{lead_text} reminder in {channel} for <@{first.created_by}>'s send: "
                  f"{card.recipient_count} recipient(s) at {when(send_at)}")
        if len(sends_left) > 1:
            detail += f", {len(sends_left)} messages ({', '.join(s.target for s in sends_left[:10])}" + (
                " …)" if len(sends_left) > 10 else ")")
        if problems:
            detail += "; provider not checked: " + "; ".join(problems[:3])
        draft = note(Action.REMINDED, Outcome.OK, detail, sends_left[0].target)
        if not await services.db(services.store.claim_reminder, batch_id, lead_seconds, "posted", draft):
            return "claimed-elsewhere"
        REMINDERS.labels(outcome="posted").inc()
        ts = await services.notifier.post_card(channel, card)
        if ts is None:
            await services.db(services.store.record, note(
                Action.FAILED, Outcome.ERROR, f"{lead_text} reminder could not be posted to {channel}",
                sends_left[0].target))
        return "posted"

    async def _check(self, sends: list[TrackedSend]) -> list[_Seen]:
        """Ask the provider about (up to MAX_CHECKS of) the sends: a reminder must not announce a send
        that was cancelled or sent elsewhere."""
        limit = asyncio.Semaphore(CHECK_CONCURRENCY)

        async def one(send: TrackedSend) -> _Seen:
            if send.state == "held":  # kept by the bot (beyond the window, or awaiting approval): the ledger knows
                return _Seen(send)
            provider = self.services.providers.get(ProviderName(send.provider))
            if provider is None:
                return _Seen(send, error=f"{display(send.provider)} is not configured here")
            async with limit:
                try:
                    return _Seen(send, await provider.status(send.target))
                except ProviderError as error:
                    return _Seen(send, error=ledger_detail(error))

        return list(await asyncio.gather(*(one(s) for s in sends[:MAX_CHECKS])))

    async def _note_change(self, seen: _Seen, lead_text: str) -> None:
        """The provider says a send is no longer waiting: record it (once: the conditional state change
        decides between replicas) and move the tracked send on."""
        assert seen.state is not None
        services, send, state = self.services, seen.send, seen.state
        new_state = state.state.value
        if not await services.db(services.store.claim_send, send.id, UPCOMING_STATES, new_state):
            return
        action, outcome = _SEEN_AS.get(state.state, (Action.FAILED, Outcome.ERROR))
        hint = " (Solapi marks a cancelled group FAILED)" if (
            send.provider == ProviderName.SOLAPI and state.status == "FAILED") else ""
        detail = (f"before the {lead_text} reminder, {display(send.provider)} says `{state.status}`{hint}: "
                  "the send changed outside the bot; no reminder for it")
        draft = EntryDraft(actor=SYSTEM_ACTOR, action=action, outcome=outcome, channel=send.channel,
                           team=send.team, provider=send.provider, target=send.target, detail=detail)
        await services.db(services.store.set_state, send.id, new_state, state.status, None, [draft])

    async def _refresh_notice(self, changed: list[TrackedSend]) -> None:
        from bot.operations.cancel import refresh_card

        send = changed[0]
        words = ", ".join(sorted({f"`{s.provider_status or s.state}`" for s in changed}))
        try:
            fresh = await self.services.db(self.services.store.get_send, send.id)
            if fresh is not None:
                said = (f"{display(send.provider)} says `{fresh.provider_status}`" if len(changed) == 1
                        else f"Changed at the provider: {words}")
                await refresh_card(self.services, fresh, said + " (seen before a reminder)")
        except Exception:  # the notice is a courtesy; the ledger already has the change
            log.exception("could not update the notice", extra={"batch": send.batch_id})

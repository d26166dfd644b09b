"""/sms status and /sms providers: the providers' own view."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.domain.ids import TargetRef
from bot.domain.results import Reply, Tone
from bot.operations.common import Invoker, Stop, describe_error, resolve, when
from bot.operations.held import HELD_PREFIX, held_status
from bot.operations.services import Services
from bot.providers.base import ProviderError
from bot.providers.registry import CREDENTIALS, display

PING_TIMEOUT = 5.0


async def status(services: Services, who: Invoker, ref: TargetRef) -> Reply:
    try:
        found = await resolve(services, ref)
    except Stop as stop:
        return stop.reply
    if found.send is not None and found.send.target.startswith(HELD_PREFIX):  # the provider knows nothing of it
        return held_status(found.send, await services.db(services.store.get_held, found.send.id))
    try:
        state = await found.provider.status(found.target)
    except ProviderError as error:
        return Reply(Tone.ERROR, describe_error(error))
    send = found.send
    if send is not None and (send.provider_status != state.status or _moved(send.send_at, state.send_at)):
        await services.db(services.store.set_state, send.id, _tracked_state(send.state, state.state),
                          state.status, state.send_at)
        if state.state.is_final:
            await services.db(services.reminders.drop, send.id)
        elif _moved(send.send_at, state.send_at):
            # Rescheduled at the provider (its console, another tool): the reminders follow the new time.
            fresh = await services.db(services.store.get_send, send.id)
            if fresh is not None:
                await services.db(services.reminders.plan, fresh)
    details = [
        f"Status: `{state.status}`",
        f"Send time: {_send_time(state.send_at, send.send_at if send is not None else None, found.provider_name)}",
        f"Recipients: {state.recipient_count or len(state.recipients)}"
        + (f" ({', '.join(state.recipients[:5])}{'…' if len(state.recipients) > 5 else ''})"
           if state.recipients else ""),
    ]
    if found.send is not None:
        details.append(f"Scheduled through the bot by <@{found.send.created_by}>")
    return Reply(Tone.INFO, f"{display(found.provider_name)} `{found.target}` is `{state.status}`.", details)


def _send_time(seen: datetime | None, known: datetime | None, provider: str) -> str:
    """The provider's send time, else the one the bot asked for (the ledger's), else: unknown. Telnyx's
    and HighLevel's message payloads do not list a send time, so a GET often tells none."""
    if seen is not None:
        return when(seen)
    if known is not None:
        return f"{when(_utc(known))} (as scheduled through the bot; {display(provider)} does not show it)"
    return f"unknown ({display(provider)} does not show it)"


def _moved(known: datetime | None, seen: datetime | None) -> bool:
    return seen is not None and (known is None or abs((_utc(known) - _utc(seen)).total_seconds()) >= 1)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _tracked_state(current: str, seen: object) -> str:
    value = str(seen)
    return current if value == "unknown" else value


async def providers(services: Services, who: Invoker) -> Reply:
    names = list(services.providers)

    async def check(name: str) -> str:
        provider = services.providers[name]  # type: ignore[index]
        try:
            await asyncio.wait_for(provider.ping(), PING_TIMEOUT)
        except ProviderError as error:
            return f"• {display(name)}: configured, but {describe_error(error)}"
        except TimeoutError:
            return f"• {display(name)}: configured, but it did not answer within {PING_TIMEOUT:.0f}s"
        return f"• {display(name)}: configured and answering"

    lines = list(await asyncio.gather(*(check(n) for n in names)))
    for name, creds in CREDENTIALS.items():
        if name not in services.providers:
            lines.append(f"• {display(name)}: not configured (set {creds})")
    tone = Tone.INFO if names else Tone.ERROR
    head = f"{len(names)} of {len(CREDENTIALS)} providers configured." if names else "No provider is configured."
    return Reply(tone, head, lines)

"""/sms cancel all mine (or a list of ids): cancel many sends, at the providers' pace, reporting progress.

Each provider has its own queue and workers, so one that is at its rate limit (its client paces every
request: bot/providers/ratelimit.py) does not hold up the others. Every send still goes through
`cancel_one`: the permission check, the Telnyx guard, the claim on the tracked send and the intent make
each cancel happen at most once, whoever else is cancelling the same send at the same time. The same
id given twice is cancelled once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from bot.domain import commands
from bot.domain.ids import TargetRef
from bot.domain.results import Reply, Tone, inert
from bot.operations.cancel import CancelResult, cancel_one, cancel_resolved
from bot.operations.common import Invoker, Resolved, Stop, provider_for, when
from bot.operations.services import Services
from bot.providers.base import ProviderName
from bot.providers.registry import display

log = logging.getLogger(__name__)

Progress = Callable[[int, int], Awaitable[None]]
Item = TargetRef | Resolved  # an id as given, or a tracked send already looked up
WORKERS_PER_PROVIDER = 8  # in flight per provider; the rate limiter, not this, sets the pace
DETAILS_SHOWN = 20


def progress_bar(done: int, total: int, width: int = 10) -> str:
    filled = 0 if total == 0 else round(width * done / total)
    return f"{done:,} / {total:,} {'▓' * filled}{'░' * (width - filled)}"


def _key(item: Item) -> tuple[str, ProviderName | None]:
    return (item.id, item.provider) if isinstance(item, TargetRef) else (item.target, item.provider_name)


async def _cancel(services: Services, who: Invoker, item: Item) -> CancelResult:
    if isinstance(item, TargetRef):
        return await cancel_one(services, who, item)
    try:  # what cancel_one does once it has resolved the id
        return await cancel_resolved(services, who, item)
    except Stop as stop:
        return CancelResult(item.target, item.provider_name, stop.reply.tone, stop.reply.text)


async def cancel_many(services: Services, who: Invoker, refs: list[TargetRef] | list[Item],
                      progress: Progress | None = None) -> Reply:
    unique = list({_key(item): item for item in reversed(refs)}.values())[::-1]
    total = len(unique)
    results: list[CancelResult | None] = [None] * total
    queues: dict[ProviderName | None, deque[tuple[int, Item]]] = {}
    for index, item in enumerate(unique):
        queues.setdefault(_key(item)[1], deque()).append((index, item))
    done = 0
    if progress is not None:
        await progress(0, total)

    async def worker(queue: deque[tuple[int, Item]]) -> None:
        nonlocal done
        while queue:
            index, item = queue.popleft()
            try:
                result = await _cancel(services, who, item)
            except Exception:  # one send's surprise must not abandon the thousands after it
                target, provider = _key(item)
                log.exception("bulk cancel: unexpected error", extra={"target": target})
                result = CancelResult(target, str(provider) if provider else None, Tone.ERROR,
                                      f"Not cancelled: unexpected error (ref `{who.request_id}`).")
            results[index] = result
            done += 1
            if progress is not None:
                await progress(done, total)

    await asyncio.gather(*(worker(queue) for queue in queues.values()
                           for _ in range(min(WORKERS_PER_PROVIDER, len(queue)))))
    return summary([r for r in results if r is not None], total)


def summary(results: list[CancelResult], total: int) -> Reply:
    ok = sum(1 for r in results if r.tone is Tone.OK)
    refused = sum(1 for r in results if r.tone is Tone.REFUSED)
    failed = sum(1 for r in results if r.tone is Tone.ERROR)
    other = total - ok - refused - failed
    others = [r for r in results if r.tone is not Tone.OK]
    details = [f"`{r.target}`: {r.text}" for r in others[:DETAILS_SHOWN]]
    if len(others) > DETAILS_SHOWN:
        details.append(f"… and {len(others) - DETAILS_SHOWN:,} more (`/sms audit` has every one).")
    text = (f"{progress_bar(total, total)}\nCancelled {ok:,} of {total:,}"
            f"; refused {refused:,}; failed {failed:,}; already done {other:,}.")
    return Reply(Tone.OK if ok == total else Tone.INFO, text, details)


PREVIEW_SHOWN = 20


async def preview_mine(services: Services, who: Invoker, cmd: commands.CancelMine) -> Reply:
    """What `/sms cancel all mine` would cancel, with a button (and Slack's confirm dialog) that does
    it: a bulk action confirms like the buttons do. The button cancels only what was listed (sends
    created by then); one scheduled after the listing is left alone."""
    now = services.now()
    sends = await services.db(services.store.owned_upcoming, who.user, now, cmd.since)
    if not sends:
        return Reply(Tone.INFO, "You have no upcoming scheduled sends to cancel.")
    lines = [f"• {when(s.send_at)} · {display(s.provider)} `{s.target}` · {s.recipient_count} recipient(s)"
             + (f" · “{inert(s.text_preview[:40])}”" if s.text_preview else "") for s in sends[:PREVIEW_SHOWN]]
    if len(sends) > PREVIEW_SHOWN:
        lines.append(f"… and {len(sends) - PREVIEW_SHOWN:,} more.")
    value = json.dumps({"s": cmd.since.isoformat() if cmd.since else None, "b": now.isoformat()},
                       separators=(",", ":"))
    return Reply(Tone.INFO, f"This would cancel {len(sends):,} upcoming send(s) you scheduled. Nothing is "
                            "cancelled until you press the button.", lines, confirm_cancel=(len(sends), value))


def mine_from_button(value: str) -> tuple[commands.CancelMine, datetime]:
    """The command a "Cancel these" button confirms, and the time its list was made."""
    data = json.loads(value)
    since = datetime.fromisoformat(data["s"]) if data.get("s") else None
    return commands.CancelMine(since), datetime.fromisoformat(data["b"])


async def cancel_mine(services: Services, who: Invoker, cmd: commands.CancelMine,
                      progress: Progress | None = None, listed_at: datetime | None = None) -> Reply:
    sends = await services.db(services.store.owned_upcoming, who.user, services.now(), cmd.since, listed_at)
    if not sends:
        return Reply(Tone.INFO, "You have no upcoming scheduled sends to cancel.")
    items: list[Item] = []
    for send in sends:  # already looked up: no second read per send (the claim still guards each one)
        name = ProviderName(send.provider)
        try:
            items.append(Resolved(name, provider_for(services, name), send.target, send))
        except Stop:  # the provider is not configured here: cancel_one says so
            items.append(TargetRef(send.target, name, explicit=True))
    return await cancel_many(services, who, items, progress)

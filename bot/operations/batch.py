"""A Cancel click on a notice or a reminder: cancel what is still waiting in that batch."""

from __future__ import annotations

from bot.domain.ids import TargetRef
from bot.domain.results import Reply, Tone
from bot.operations.cancel import already, cancel_one, summarise
from bot.operations.common import Invoker
from bot.operations.services import Services
from bot.providers.base import ProviderName


async def cancel_batch(services: Services, who: Invoker, batch_id: str) -> Reply:
    sends = await services.db(services.store.batch, batch_id)
    if not sends:
        return Reply(Tone.ERROR, "This button's send is not in the ledger; nothing was done.")
    waiting = [s for s in sends if s.state in ("scheduled", "pending", "held")]
    if not waiting:
        return Reply(Tone.INFO, await already(services, sends[0]))
    results = [await cancel_one(services, who, TargetRef(s.target, ProviderName(s.provider), explicit=True))
               for s in waiting]
    if len(results) == 1:
        return Reply(results[0].tone, results[0].text)
    return summarise(results)

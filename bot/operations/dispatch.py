"""A parsed command to the operation that carries it out."""

from __future__ import annotations

from bot.domain import commands
from bot.domain.results import Reply, Tone
from bot.operations import approval, cancel, delete, listing, optout, reschedule, schedule, status
from bot.operations.bulk import cancel_mine
from bot.operations.common import Invoker
from bot.operations.services import Services


async def run(services: Services, who: Invoker, command: commands.Command) -> Reply:
    match command:
        case commands.Providers():
            return await status.providers(services, who)
        case commands.Status(target=target):
            return await status.status(services, who, target)
        case commands.Cancel(targets=targets):
            return await cancel.cancel(services, who, targets)
        case commands.CancelMine():
            return await cancel_mine(services, who, command)
        case commands.Schedule():
            return await schedule.schedule(services, who, command)
        case commands.Reschedule(target=target, send_at=send_at):
            return await reschedule.reschedule(services, who, target, send_at)
        case commands.Compose():  # the form opens in Slack (bot/slack/listeners/views.py); elsewhere, say how
            return Reply(Tone.INFO, "The compose form opens in Slack. Here, type it in one line: `"
                         + commands.USAGE["schedule"].split("   ")[0] + "`.")
        case commands.Track():
            return await schedule.track(services, who, command)
        case commands.Send(target=target, override=override):
            return await approval.request_send(services, who, target, override)
        case commands.Policy():
            return await optout.policy(services, who)
        case commands.OptOutEdit():
            return await optout.edit(services, who, command)
        case commands.OptOutList():
            return await optout.listing(services, who)
        case commands.Delete(target=target):
            return await delete.delete(services, who, target)
        case commands.ListSends():
            return await listing.list_sends(services, who, command)
        case commands.Audit():
            return await listing.audit(services, who, command)
    return Reply(Tone.ERROR, "That command is not available yet.")


def progress_text(command: commands.Command) -> str:
    """What the user sees the moment the command is acknowledged."""
    match command:
        case commands.Cancel(targets=targets):
            return f"⏳ Cancelling {', '.join(f'`{t}`' for t in targets[:3])}{' …' if len(targets) > 3 else ''}"
        case commands.CancelMine():
            return "⏳ Finding your upcoming sends to cancel…"
        case commands.Schedule(provider=provider, to=to):
            return f"⏳ Scheduling with {provider} to {len(to)} recipient(s)…"
        case commands.Reschedule(target=target):
            return f"⏳ Moving `{target}`…"
        case commands.Status(target=target):
            return f"⏳ Asking the provider about `{target}`…"
        case commands.Providers():
            return "⏳ Checking the providers…"
        case commands.Send(target=target):
            return f"⏳ Checking `{target}` before asking for approval…"
        case commands.Delete(target=target):
            return f"⏳ Deleting `{target}`…"
        case commands.Track(target=target):
            return f"⏳ Looking up `{target}`…"
    return "⏳ Working on it…"

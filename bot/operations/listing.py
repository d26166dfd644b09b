"""/sms list and /sms audit: read what the ledger knows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.domain import commands
from bot.domain.ids import TargetRef
from bot.domain.results import Reply, Tone, inert
from bot.operations.common import Invoker, when
from bot.operations.services import Services
from bot.providers.registry import display
from db.audit import AuditFilter, action_words, query
from db.models import Action, LedgerEntry, Outcome

PAGE = 20


async def list_sends(services: Services, who: Invoker, cmd: commands.ListSends) -> Reply:
    owner = who.user if cmd.scope == "mine" else None
    sends = await services.db(services.store.upcoming, services.now(), owner, 50)
    whose = "yours" if owner else "everyone's"
    if not sends:
        empty = ("You have no upcoming sends. `/sms list all` shows everyone's." if owner
                 else "No upcoming sends: nothing is scheduled.")
        return Reply(Tone.INFO, empty)
    lines = [
        f"• {when(s.send_at)} · {display(s.provider)} `{s.target}` · {s.recipient_count} recipient(s) · "
        f"by <@{s.created_by}> · {s.state}"
        + (f" · “{inert(s.text_preview[:60])}”" if s.text_preview else "")
        for s in sends
    ]
    return Reply(Tone.INFO, f"{len(sends)} upcoming send(s) ({whose}), soonest first:", lines)


async def audit(services: Services, who: Invoker, cmd: commands.Audit, before_seq: int | None = None) -> Reply:
    """One page of the audit trail (`cmd.limit` entries), with a More button when there is more.

    `before_seq` is the More button's cursor: the last `seq` the previous page showed. The next page
    continues past it in the answer's order: back in time for the newest-first answers, forward for
    an id's history, which is told oldest first. (The name is the newest-first case's; the Slack
    action handler passes it by that name.)"""
    actor = cmd.actor
    if not services.permissions.may_read_all_audit(who.user):
        if actor is not None and actor != who.user:
            await services.db(services.store.record, who.draft(
                Action.REFUSED, Outcome.REFUSED, detail=f"audit of {actor} refused: not an auditor"))
            return Reply(Tone.REFUSED, "You may read only your own actions: auditors (SMS_AUDITORS) and admins "
                                       "may read everyone's.")
        actor = who.user
    # One row past the page tells whether there is more, without counting the rest.
    oldest_first = cmd.target is not None
    flt = AuditFilter(target=cmd.target.id if cmd.target else None, actor=actor,
                      provider=str(cmd.provider) if cmd.provider else None, since=cmd.since,
                      limit=cmd.limit + 1, before_seq=None if oldest_first else before_seq,
                      after_seq=before_seq if oldest_first else None)
    entries = await services.db(query, services.engine, flt)
    more = len(entries) > cmd.limit
    entries = entries[: cmd.limit]
    tz = await _tz(services, who.user)
    if not entries:
        return Reply(Tone.INFO, "No ledger entries match.", tz=tz)
    lines = [_line(e, tz) for e in entries]
    token = None
    if more:
        token = json.dumps({"t": cmd.target.id if cmd.target else None,
                            "tp": str(cmd.target.provider) if cmd.target and cmd.target.provider else None,
                            "a": actor, "p": flt.provider,
                            "s": cmd.since.isoformat() if cmd.since else None, "l": cmd.limit,
                            "b": entries[-1].seq}, separators=(",", ":"))
    what = f"`{cmd.target.id}`, oldest first" if cmd.target else "newest first"
    return Reply(Tone.INFO, f"{len(entries)} ledger entr{'y' if len(entries) == 1 else 'ies'} ({what}), "
                            f"times in {tz}:", lines, more=token, tz=tz)


def audit_from_token(token: str) -> tuple[commands.Audit, int]:
    """The command a More button continues, and its cursor (the last `seq` shown). The token is the
    button's value, which the clicker could edit: the command is rebuilt from it and re-checked by
    `audit` (who may read what), and its values only ever reach the database as bound parameters."""
    data = json.loads(token)
    since = datetime.fromisoformat(data["s"]) if data.get("s") else None
    provider = commands.provider_from_name(data["p"]) if data.get("p") else None
    target = None
    if data.get("t"):
        target_provider = commands.provider_from_name(data["tp"]) if data.get("tp") else None
        target = TargetRef(str(data["t"]), target_provider, explicit=target_provider is not None)
    limit = min(max(int(data.get("l", PAGE)), 1), commands.MAX_LIMIT)  # the page size /sms audit allows
    return commands.Audit(target, data.get("a"), provider, since, limit), int(data["b"])


async def _tz(services: Services, user: str) -> str:
    if services.tz_of is None:
        return "UTC"
    try:
        name = await services.tz_of(user)
        ZoneInfo(name)
        return str(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return "UTC"
    except Exception:  # the reader's zone is a nicety; never fail the audit over it
        return "UTC"


def _line(entry: LedgerEntry, tz: str) -> str:
    local = entry.at.astimezone(ZoneInfo(tz))
    utc = entry.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = f"<!date^{int(entry.at.timestamp())}^{{date_short}} {{time_secs}}|{local:%Y-%m-%d %H:%M:%S %Z}>"
    who = "system" if entry.actor == "system" else f"<@{entry.actor}>"
    target = f" {display(entry.provider)} `{entry.target}`" if entry.target and entry.provider else ""
    mark = {"ok": "", "refused": " ⛔", "error": " ⚠️"}.get(entry.outcome, "")
    detail = f" — {entry.detail}" if entry.detail else ""
    return f"• {stamp} ({utc}) {who} *{action_words(entry.action)}*{mark}{target}{detail}"

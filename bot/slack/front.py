"""What a Slack request's ack says, decided without I/O: the ack path (bot/server/http.py) answers
with it at once, after one durable write, and the work is left to the inbox's workers.

A slash command is parsed here (pure) only to answer `/sms help` and a usage error in the ack itself,
as before, and to say what is about to happen; the worker parses it again with the invoker's Slack
time zone, which is not looked up in front of an ack."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from bot.domain import commands
from bot.domain.results import Reply, Tone
from bot.domain.when import zone
from bot.operations.dispatch import progress_text
from bot.slack.blocks import help_blocks, reply_blocks, reply_text

# Payloads whose ack carries the answer Slack acts on (a modal's errors or next view, a menu's options):
# they are handled in line by Bolt, not queued.
IN_LINE_TYPES = frozenset({"view_submission", "view_closed", "block_suggestion", "url_verification"})


@dataclass(frozen=True)
class Front:
    """How to ack one request: `queue` it (kind, for the inbox) or answer it in line (`in_line`: hand it to
    Bolt; else `answer` is the whole response)."""

    kind: str  # command, action, event, other
    queue: bool
    answer: dict[str, Any] | None = None  # the ack's JSON body (None: an empty 200)
    in_line: bool = False
    response_url: str | None = None
    counted: tuple[str, str] | None = None  # (command, outcome) for smsops_commands_total when answered here


def read_form(body: bytes, content_type: str) -> dict[str, Any]:
    """The request as Slack sent it: a slash command's form, an interaction's payload, or an event."""
    text = body.decode("utf-8", "replace")
    if "json" in content_type or text.lstrip().startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}
    form = dict(parse_qsl(text, keep_blank_values=True))
    if "payload" in form and "command" not in form:
        try:
            payload = json.loads(form["payload"])
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}
    return form


def front(body: bytes, content_type: str, now: datetime, default_tz: str, default_region: str | None,
          roles: Callable[[str], tuple[bool, bool]] = lambda _user: (True, True)) -> Front:
    """`roles(user)` → (admin, auditor), from the settings (no I/O): `/sms help` shows only what the
    invoker may do."""
    form = read_form(body, content_type)
    kind = str(form.get("type") or "")
    if "command" in form:
        return _command_front(form, now, default_tz, default_region, roles)
    if kind in IN_LINE_TYPES or not form:
        return Front(kind=kind or "other", queue=False, in_line=True)
    return Front(kind="event" if kind == "event_callback" else "action", queue=True,
                 response_url=form.get("response_url") or None)


def _command_front(form: dict[str, Any], now: datetime, default_tz: str, default_region: str | None,
                   roles: Callable[[str], tuple[bool, bool]]) -> Front:
    text = str(form.get("text") or "")
    where: dict[str, Any] = {"response_url": form.get("response_url") or None}
    try:
        parsed = commands.parse(text, now, zone(None, default_tz), default_region=default_region)
    except commands.UsageError as error:
        if text.lstrip().lower().startswith("schedule") and not _in_every_zone(text, now, default_region):
            # its time reads differently in the invoker's own zone, not looked up here: the worker decides
            return Front(kind="command", queue=True, answer=_ephemeral("⏳ Working on it…"), **where)
        usage = f"\nUsage: `{error.usage}`" if error.usage else "\nType `/sms help` for every command."
        reply = Reply(Tone.ERROR, f"{error.message}.{usage}" if not error.message.endswith(".")
                      else f"{error.message}{usage}")
        return Front(kind="command", queue=False, answer=_ephemeral(reply_text(reply), reply_blocks(reply)),
                     counted=("usage_error", "error"), **where)
    except Exception:  # a parser bug: let the worker meet it and apologise with the request id
        return Front(kind="command", queue=True, answer=_ephemeral("⏳ Working on it…"), **where)
    if isinstance(parsed, commands.Help):
        admin, auditor = roles(str(form.get("user_id") or ""))
        return Front(kind="command", queue=False,
                     answer=_ephemeral("/sms commands", help_blocks(parsed.verb, now, admin=admin, auditor=auditor)),
                     counted=("help", "ok"), **where)
    if isinstance(parsed, commands.Compose):  # the worker opens the modal; if it can't, it says so there
        return Front(kind="command", queue=True, answer=_ephemeral("📝 Opening the form to schedule an SMS…"),
                     **where)
    ack = ("⏳ Finding your upcoming sends…" if isinstance(parsed, commands.CancelMine) else progress_text(parsed))
    return Front(kind="command", queue=True, answer=_ephemeral(ack), **where)


# The zones furthest apart: a time refused in both (in the past, too far ahead) is refused in every zone,
# so the ack can say so, worded in DEFAULT_TZ.
_EARLIEST, _LATEST = "Etc/GMT-14", "Etc/GMT+12"


def _in_every_zone(text: str, now: datetime, default_region: str | None) -> bool:
    for name in (_EARLIEST, _LATEST):
        try:
            commands.parse(text, now, zone(None, name), default_region=default_region)
        except commands.UsageError:
            continue  # its wording shows the time in that zone; that it is refused is what counts
        except Exception:
            return False
        return False
    return True


def queued_note(ahead: int) -> str:
    return f"⏳ Queued: {ahead:,} request(s) ahead of yours; it will be handled in turn."


def with_queue(answer: dict[str, Any] | None, ahead: int) -> dict[str, Any] | None:
    """The command's ack, telling how many are ahead when it has to wait its turn."""
    if answer is None or ahead <= 0:
        return answer
    return {**answer, "text": f"{answer.get('text', '')}\n{queued_note(ahead)}"}


def _ephemeral(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"response_type": "ephemeral", "text": text}
    if blocks:
        answer["blocks"] = blocks
    return answer

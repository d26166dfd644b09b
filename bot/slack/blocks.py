"""Replies and cards as Block Kit (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.commands import RECIPIENTS_NOTE, USAGE, examples
from bot.domain.results import Card, CardKind, Reply, Tone, inert
from bot.providers.registry import display
from bot.slack.ids import ActionId

Block = dict[str, Any]

ICON = {Tone.OK: "✅", Tone.REFUSED: "⛔", Tone.ERROR: "⚠️", Tone.INFO: "ℹ️"}
MAX_TEXT = 2900  # a section's text may be 3,000 characters


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text)}}


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, 75), "emoji": True}


def _confirm(title: str, text: str, yes: str, no: str = "Keep it", danger: bool = True) -> dict[str, Any]:
    confirm: dict[str, Any] = {
        "title": {"type": "plain_text", "text": _cut(title, 100)},
        "text": {"type": "mrkdwn", "text": _cut(text, 300)},
        "confirm": {"type": "plain_text", "text": _cut(yes, 30)},
        "deny": {"type": "plain_text", "text": _cut(no, 30)},
    }
    if danger:
        confirm["style"] = "danger"
    return confirm


def reply_blocks(reply: Reply) -> list[Block]:
    blocks = [_section(f"{ICON[reply.tone]} {reply.text}")]
    chunk: list[str] = []
    size = 0
    for line in reply.details:
        if size + len(line) > MAX_TEXT and chunk:
            blocks.append(_section("\n".join(chunk)))
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
        if len(blocks) >= 45:
            break
    if chunk:
        blocks.append(_section("\n".join(chunk)))
    if reply.confirm_cancel:
        count, value = reply.confirm_cancel
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": ActionId.CANCEL_MINE, "text": _plain(f"Cancel these {count:,}"),
            "style": "danger", "value": value[:2000],
            "confirm": _confirm(f"Cancel {count:,} scheduled sends?",
                                f"This cancels the {count:,} sends listed above at their providers. "
                                "It can't be undone.", "Cancel them"),
        }]})
    if reply.more:
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": ActionId.AUDIT_MORE, "text": _plain("More"), "value": reply.more[:2000],
        }]})
    return blocks


def reply_text(reply: Reply) -> str:
    """The notification/fallback text of a reply."""
    return _cut(f"{ICON[reply.tone]} {reply.text}", 300)


ADMIN_VERBS = ("optout",)  # only admins may use these: help shows them to admins only
OWN_AUDIT = "/sms audit [<id>|<provider>] [since <7d|date>] [limit <n>]   (your own actions)"


def help_blocks(verb: str | None = None, now: datetime | None = None, *, admin: bool = True,
                auditor: bool = True) -> list[Block]:
    """`/sms help`, showing only what the invoker may do: admin-only verbs and `--override` to admins,
    the audit of everyone to auditors (and admins)."""
    verbs = [verb] if verb else [v for v in USAGE if admin or v not in ADMIN_VERBS]
    now = now or datetime.now(UTC)
    example = examples(now)
    usage = dict(USAGE)
    if not auditor:
        usage["audit"] = OWN_AUDIT
        example["audit"] = example["audit"].replace("<@U012AB3CD> ", "")
    lines = [f"`{usage[v]}`\n      e.g. `{example[v]}`" for v in verbs]
    if admin and verb is None:
        lines.append("`/sms schedule --override …`  ·  `/sms send --override <groupId>`   (admins)\n      lets it "
                     "past quiet hours and daily limits (recorded); opt-outs are never overridden.")
    intro = ("*/sms* schedules, approves, sends and cancels SMS at Solapi/CoolSMS, HighLevel and Telnyx, "
             "and keeps a ledger of who did what.")
    soon = (now.astimezone(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    month_start = f"{now.astimezone(UTC):%Y-%m}-01"  # a date that is never in the future
    notes = (f"`<when>`: as you write it, in your Slack time zone (`tomorrow 9am`, `fri 14:00`, `24 dec 9am`, "
             f"`내일 오전 9시`), ISO-8601 with an offset (`{soon}T09:00+09:00`, `…Z`) or `in 90s` / `in 45m` / "
             f"`in 2h` / `in 1d`.  `since`: a span back (`7d`, `12h`, `30m`), a date (`{month_start}`) or an "
             "ISO-8601 time.  `<id>` may be prefixed `telnyx:`, `twilio:`, `solapi:` or `highlevel:`.  "
             + RECIPIENTS_NOTE)
    return [_section(intro), _section("\n".join(lines)), {"type": "context",
                                                          "elements": [{"type": "mrkdwn", "text": notes}]}]


def card_blocks(card: Card) -> list[Block]:
    when = (f"<!date^{int(card.send_at.timestamp())}^{{date_short_pretty}} at {{time}}|"
            f"{card.send_at:%Y-%m-%d %H:%M UTC}>" if card.send_at else "not scheduled")
    targets = ", ".join(f"`{t}`" for t in card.targets[:5]) + (
        f" and {len(card.targets) - 5} more" if len(card.targets) > 5 else "")
    head = card.headline
    if card.kind is CardKind.REMINDER and card.owner and card.mention_owner:
        head = f"⏰ <@{card.owner}> {head}"
    fields = [
        {"type": "mrkdwn", "text": f"*Provider*\n{display(card.provider)}"},
        {"type": "mrkdwn", "text": f"*Goes out*\n{when}"},
        {"type": "mrkdwn", "text": f"*Recipients*\n{card.recipient_count:,}"},
        {"type": "mrkdwn", "text": f"*Id*\n{targets}"},
    ]
    blocks: list[Block] = [
        _section(head),
        {"type": "section", "fields": fields},
    ]
    if card.text_preview:
        # the SMS body as typed: `<!channel>` or `<@U…>` in it must not notify anyone here
        blocks.append(_section(">" + inert(_cut(card.text_preview, 500)).replace("\n", "\n>")))
    if card.outcome:
        blocks.append(_section(card.outcome))
    buttons = _buttons(card)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"card:{card.record_id}", "elements": buttons})
    elif card.cancel_blocked:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": card.cancel_blocked}]})
    return blocks


def _buttons(card: Card) -> list[Block]:
    if card.kind is CardKind.CLOSED:
        return []
    what = f"{display(card.provider)} send to {card.recipient_count:,} recipient(s)"
    cancel = {
        "type": "button", "action_id": ActionId.CANCEL_BATCH, "text": _plain("Cancel"), "style": "danger",
        "value": card.record_id,
        "confirm": _confirm("Cancel this SMS?", f"This cancels the {what} at the provider.", "Cancel it"),
    }
    if card.kind is CardKind.APPROVAL:
        return [
            {"type": "button", "action_id": ActionId.APPROVE, "text": _plain("Approve"), "style": "primary",
             "value": card.record_id,
             "confirm": _confirm("Send now?", f"This sends the {what} immediately. It can't be undone.",
                                 "Send it", "Not yet", danger=False)},
            {**cancel, "action_id": ActionId.REJECT,
             "confirm": _confirm("Cancel this request?", "Nothing will be sent; the group stays as it is.",
                                 "Cancel request")},
        ]
    if card.kind is CardKind.HOLD:  # held by the bot until the rules file's approvers approve it
        note = card.approval_note or "the approval rules"
        return [
            {"type": "button", "action_id": ActionId.APPROVE, "text": _plain("Approve"), "style": "primary",
             "value": card.record_id,
             "confirm": _confirm("Approve this SMS?", f"Your approval counts toward {note}. The {what} is handed "
                                 "to the provider once every rule has its approvals.", "Approve", "Not yet",
                                 danger=False)},
            {"type": "button", "action_id": ActionId.REJECT, "text": _plain("Reject"), "style": "danger",
             "value": card.record_id,
             "confirm": _confirm("Reject this SMS?", f"The {what} is closed and never sent.", "Reject it")},
        ]
    if card.cancel_blocked:
        return []
    change = {"type": "button", "action_id": ActionId.RESCHEDULE, "text": _plain("Change time"),
              "value": card.record_id}
    return [cancel, change]


def card_text(card: Card) -> str:
    """Fallback/notification text for a card."""
    base = f"{card.headline}: {display(card.provider)}, {card.recipient_count} recipient(s)"
    return _cut(f"{base}. {card.outcome}" if card.outcome else base, 300)

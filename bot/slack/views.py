"""The compose form, its preview and the "Change time" form as Block Kit modals, and reading what was typed
into them (no I/O: the listeners in bot/slack/listeners/views.py open, update and submit them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain import commands, policy, text_limits
from bot.domain.durations import format_duration
from bot.domain.results import inert
from bot.domain.when import WhenError, read_time
from bot.providers.base import ProviderName
from bot.providers.registry import display

Block = dict[str, Any]

COMPOSE = "sms_compose"  # callback id of the form (and the shortcut's callback id)
PREVIEW = "sms_compose_preview"  # callback id of the preview, whose submit schedules
RESCHEDULE = "sms_reschedule"  # callback id of the "Change time" form
BACK = "sms_compose_back"  # the preview's Back button

# block ids: a field error names the block it belongs to
PROVIDER, RECIPIENTS, TEXT, DATE, TIME, WHEN, CHANNEL = "provider", "recipients", "text", "date", "time", "when", \
    "channel"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75], "emoji": True}


def _input(block_id: str, label: str, element: dict[str, Any], optional: bool = False,
           hint: str | None = None) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": _plain(label),
                    "element": {"action_id": block_id, **element}, "optional": optional}
    if hint:
        block["hint"] = _plain(hint)
    return block


def _modal(callback_id: str, title: str, blocks: list[Block], metadata: dict[str, Any], submit: str | None,
           close: str = "Cancel") -> dict[str, Any]:
    view: dict[str, Any] = {"type": "modal", "callback_id": callback_id, "title": _plain(title[:24]),
                            "close": _plain(close), "blocks": blocks,
                            "private_metadata": json.dumps(metadata, ensure_ascii=False)[:3000]}
    if submit:
        view["submit"] = _plain(submit)
    return view


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# --- the form ------------------------------------------------------------------------------------

def compose_form(providers: list[ProviderName], now: datetime, tz: ZoneInfo, channel: str | None,
                 kept: dict[str, str] | None = None) -> dict[str, Any]:
    """The form, empty or (`kept`, after Back) with what was typed. The pickers start at tomorrow 09:00
    in the writer's zone."""
    kept = kept or {}
    tomorrow = (now.astimezone(tz) + timedelta(days=1)).date()
    options = [{"text": _plain(display(p)), "value": p.value} for p in providers]
    chosen = next((o for o in options if o["value"] == kept.get(PROVIDER)), options[0] if len(options) == 1 else None)
    provider: dict[str, Any] = {"type": "static_select", "placeholder": _plain("Pick a provider"), "options": options}
    if chosen:
        provider["initial_option"] = chosen

    def text_input(block_id: str, multiline: bool, placeholder: str, max_length: int | None = None) -> dict[str, Any]:
        element: dict[str, Any] = {"type": "plain_text_input", "multiline": multiline,
                                   "placeholder": _plain(placeholder)}
        if kept.get(block_id):
            element["initial_value"] = kept[block_id]
        if max_length:
            element["max_length"] = max_length
        return element

    blocks: list[Block] = [
        _input(PROVIDER, "Provider", provider),
        _input(RECIPIENTS, "Recipients", text_input(RECIPIENTS, True, "+15551234567, 010-1234-5678, …"),
               hint="One a line, or separated by commas. HighLevel: contact ids."),
        _input(TEXT, "Text", text_input(TEXT, True, "What the phones get", commands.MAX_TEXT)),
        _input(DATE, "Date", {"type": "datepicker", "initial_date": kept.get(DATE) or tomorrow.isoformat()},
               optional=True),
        _input(TIME, "Time", {"type": "timepicker", "initial_time": kept.get(TIME) or "09:00"}, optional=True,
               hint=f"In your time zone, {tz.key}."),
        _input(WHEN, "Or say when", text_input(WHEN, False, "tomorrow 9am · fri 14:00 · in 2h"), optional=True,
               hint="Written here, it wins over the date and time above."),
    ]
    if not channel:  # from the shortcut or App Home: where the notice goes
        element: dict[str, Any] = {"type": "conversations_select", "filter": {"include": ["public", "private"]}}
        if kept.get(CHANNEL):
            element["initial_conversation"] = kept[CHANNEL]
        blocks.append(_input(CHANNEL, "Post the notice in", element, optional=True,
                             hint="Reminders and the Cancel button go there."))
    return _modal(COMPOSE, "Schedule SMS", blocks, {"channel": channel or "", "tz": tz.key}, "Preview")


def typed(view: dict[str, Any]) -> dict[str, str]:
    """What is in the form's fields now, by block id, as text ('' when empty)."""
    out: dict[str, str] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for value in actions.values():
            picked = (value.get("value") or value.get("selected_date") or value.get("selected_time")
                      or value.get("selected_conversation") or (value.get("selected_option") or {}).get("value"))
            out[block_id] = str(picked or "")
    return out


@dataclass(frozen=True)
class Draft:
    provider: ProviderName
    to: tuple[str, ...]
    text: str
    send_at: datetime
    channel: str | None

    def as_json(self) -> dict[str, Any]:
        return {"provider": self.provider.value, "to": list(self.to), "text": self.text,
                "send_at": self.send_at.isoformat(), "channel": self.channel or ""}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Draft:
        return cls(ProviderName(data["provider"]), tuple(data["to"]), str(data["text"]),
                   datetime.fromisoformat(data["send_at"]), data.get("channel") or None)


def read_form(values: dict[str, str], configured: list[ProviderName], now: datetime, tz: ZoneInfo,
              default_region: str | None, channel: str | None) -> Draft | dict[str, str]:
    """The draft, or {block id: what is wrong} with the same rules `/sms schedule` applies."""
    errors: dict[str, str] = {}
    provider: ProviderName | None = None
    try:
        provider = ProviderName(values.get(PROVIDER, ""))
    except ValueError:
        errors[PROVIDER] = "Pick a provider."
    if provider is not None and provider not in configured:
        errors[PROVIDER] = f"{display(provider)} is not configured here."
        provider = None
    raw = [r.strip() for line in values.get(RECIPIENTS, "").splitlines() for r in line.split(",") if r.strip()]
    to: tuple[str, ...] = ()
    if not raw:
        errors[RECIPIENTS] = "Add at least one recipient."
    elif provider is not None:
        try:
            to = commands.check_recipients(provider, tuple(raw), default_region)
        except commands.UsageError as error:
            errors[RECIPIENTS] = sentence(error.message)
    text = values.get(TEXT, "").strip()
    if not text:
        errors[TEXT] = "Write what to send."
    elif provider is not None and (too_long := text_limits.check(provider, text)) is not None:
        errors[TEXT] = sentence(too_long)
    send_at = _read_when(values, now, tz, errors)
    if send_at is not None and provider is not None:
        window = policy.schedule_window(provider, send_at, now)
        if not window.allowed:
            errors[WHEN if values.get(WHEN) else TIME] = sentence(window.reason)
    if errors or provider is None or send_at is None:
        return errors
    return Draft(provider, to, text, send_at, values.get(CHANNEL) or channel)


def _read_when(values: dict[str, str], now: datetime, tz: ZoneInfo, errors: dict[str, str]) -> datetime | None:
    if values.get(WHEN):
        try:
            return commands.read_only_time(values[WHEN], now, tz)
        except commands.UsageError as error:
            errors[WHEN] = sentence(error.message)
            return None
    if not values.get(DATE) or not values.get(TIME):
        errors[TIME if values.get(DATE) else DATE] = "Pick a date and a time, or say when below."
        return None
    try:
        local = datetime.combine(date.fromisoformat(values[DATE]), time.fromisoformat(values[TIME]))
        at = read_time(local.strftime("%Y-%m-%d %H:%M"), now, tz).at  # DST gaps and repeats refused as typed
    except (ValueError, WhenError) as error:
        errors[TIME] = sentence(getattr(error, "message", str(error)))
        return None
    if at <= now:
        errors[TIME] = f"{local:%Y-%m-%d %H:%M} {tz.key} is in the past: pick a time ahead."
        return None
    return at


def sentence(text: str) -> str:
    text = text.replace("`", "")
    text = text[:1].upper() + text[1:]
    return (text if text.endswith(".") else text + ".")[:150]


# --- the preview ---------------------------------------------------------------------------------

def measure(provider: ProviderName, text: str) -> str:
    """Encoding and segments as the provider counts them."""
    if provider is ProviderName.SOLAPI:
        size = text_limits.solapi_bytes(text)
        return (f"{text_limits.solapi_kind(text)}: {size:,} bytes in EUC-KR (an SMS takes up to "
                f"{text_limits.SOLAPI_SMS_BYTES}, an LMS up to {text_limits.SOLAPI_LMS_BYTES:,})")
    if provider in (ProviderName.TELNYX, ProviderName.TWILIO):
        m = text_limits.telnyx_measure(text)
        return f"{m.kind}: {m.size:,} {m.unit}, {m.parts} segment(s)"
    return f"{len(text):,} characters (HighLevel counts no segments; the bot takes up to " \
           f"{text_limits.HIGHLEVEL_MAX_CHARACTERS:,})"


def checks(draft: Draft, now: datetime, guard: timedelta) -> list[str]:
    """Every rule the schedule will meet, as a line each."""
    ahead = format_duration(draft.send_at - now)
    window = {ProviderName.TELNYX: "Telnyx schedules 5 minutes to 5 days ahead",
              ProviderName.TWILIO: "Twilio schedules 15 minutes to 35 days ahead",
              ProviderName.SOLAPI: f"Solapi schedules up to {policy.SOLAPI_MAX_MONTHS} months ahead",
              ProviderName.HIGHLEVEL: "HighLevel takes any time ahead"}[draft.provider]
    lines = [f"✅ Window: {window}; this is {ahead} ahead."]
    if draft.provider is ProviderName.TELNYX:
        lines.append(f"ℹ️ Cancel guard: the bot refuses to cancel it within {format_duration(guard)} of the send "
                     f"time (from {(draft.send_at - guard).astimezone(UTC):%H:%M:%S} UTC).")
    if draft.provider is ProviderName.SOLAPI:
        lines.append("ℹ️ One Solapi group for every recipient: Cancel and Change time act on the whole group.")
    lines.append("✅ Approvals: none needed; it is scheduled at the provider when you press Schedule.")
    return lines


def preview(draft: Draft, now: datetime, tz: ZoneInfo, guard: timedelta, kept: dict[str, str]) -> dict[str, Any]:
    stamp = int(draft.send_at.timestamp())
    local = draft.send_at.astimezone(tz)
    when = (f"<!date^{stamp}^{{date_long_pretty}} at {{time}}|{local:%Y-%m-%d %H:%M} {tz.key}> "
            f"({local:%Y-%m-%d %H:%M %Z} in {tz.key}) = {draft.send_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    shown = ", ".join(draft.to[:5]) + (f" and {len(draft.to) - 5} more" if len(draft.to) > 5 else "")
    blocks: list[Block] = [
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Provider*\n{display(draft.provider)}"},
            {"type": "mrkdwn", "text": f"*Recipients*\n{len(draft.to):,}: {inert(shown)}"},
        ]},
        {"type": "section", "block_id": "when", "text": {"type": "mrkdwn", "text": f"*Goes out*\n{when}"}},
        {"type": "section", "block_id": "text", "text": {"type": "mrkdwn",
                                                         "text": ">" + inert(draft.text[:2500]).replace("\n", "\n>")}},
        {"type": "context", "block_id": "measure", "elements": [{"type": "mrkdwn",
                                                                 "text": measure(draft.provider, draft.text)}]},
        {"type": "section", "block_id": "checks",
         "text": {"type": "mrkdwn", "text": "*Checks*\n" + "\n".join(checks(draft, now, guard))}},
        {"type": "actions", "block_id": "back", "elements": [
            {"type": "button", "action_id": BACK, "text": _plain("Back"), "value": "back"}]},
    ]
    return _modal(PREVIEW, "Check and schedule", blocks, {"draft": draft.as_json(), "kept": kept, "tz": tz.key},
                  "Schedule")


# --- "Change time" -----------------------------------------------------------------------------------

def reschedule_form(batch_id: str, label: str, current: datetime | None, tz: ZoneInfo,
                    channel: str | None) -> dict[str, Any]:
    now_at = (f"Now goes out <!date^{int(current.timestamp())}^{{date_short_pretty}} at {{time}}|"
              f"{current.astimezone(UTC):%Y-%m-%d %H:%M} UTC>." if current else "Its send time is unknown.")
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{label}. {now_at}"}},
        _input(WHEN, "New time", {"type": "plain_text_input", "placeholder": _plain("tomorrow 9am · in 2h")},
               hint=f"Read in your time zone, {tz.key}; ISO-8601 with an offset works too."),
    ]
    return _modal(RESCHEDULE, "Change time", blocks, {"batch": batch_id, "tz": tz.key, "channel": channel or ""},
                  "Move it")

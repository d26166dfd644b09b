"""Slack messages as terminal text, for `python -m bot console` (pure: no I/O, no bot state).

Block Kit becomes readable lines, mrkdwn loses its markers, `<@U…>` becomes `@name`, `<#C…>` becomes
`#name`, `<!date^…>` becomes a local time with how long until it, and each button becomes `[n] Label`
with a number the caller hands out (the same button keeps its number when its message is updated).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.domain.durations import format_duration

Block = Mapping[str, Any]

_USER = re.compile(r"<@([UW][A-Z0-9]+)(?:\|([^>]*))?>")
_CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|([^>]*))?>")
_DATE = re.compile(r"<!date\^(\d+)\^[^|>]*(?:\^[^|>]*)?(?:\|([^>]*))?>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)(?:\|[^>]*)?>")
_LINK = re.compile(r"<((?:https?|mailto):[^|>]+)(?:\|([^>]*))?>")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_CODE_BLOCK = re.compile(r"```\n?(.*?)\n?```", re.DOTALL)
_CODE = re.compile(r"`([^`\n]+)`")


@dataclass
class Style:
    """How to emphasise; `plain()` for logs, pipes and NO_COLOR, `ansi()` for a terminal."""

    bold: Callable[[str], str] = lambda s: s
    dim: Callable[[str], str] = lambda s: s
    button: Callable[[str], str] = lambda s: s
    danger: Callable[[str], str] = lambda s: s

    @classmethod
    def plain(cls) -> Style:
        return cls()

    @classmethod
    def ansi(cls) -> Style:
        return cls(
            bold=lambda s: f"\033[1m{s}\033[0m",
            dim=lambda s: f"\033[2m{s}\033[0m",
            button=lambda s: f"\033[1;36m{s}\033[0m",
            danger=lambda s: f"\033[1;31m{s}\033[0m",
        )


@dataclass(frozen=True)
class Button:
    """A button as found in a message; `confirm` is Slack's confirmation dialog, if any."""

    action_id: str
    value: str
    label: str
    style: str | None = None
    confirm: Mapping[str, Any] | None = None


@dataclass
class Names:
    """What to call Slack ids: users by id, channels by id."""

    users: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)

    def user(self, uid: str) -> str:
        return "@" + self.users.get(uid, uid)

    def channel(self, cid: str) -> str:
        return "#" + self.channels.get(cid, cid)


def mrkdwn(text: str, names: Names, now: datetime | None = None) -> str:
    """Slack mrkdwn (and its `<…>` tokens) as plain text."""
    moment = now or datetime.now(UTC)

    def date(match: re.Match[str]) -> str:
        return local_time(datetime.fromtimestamp(int(match.group(1)), UTC), moment)

    text = _DATE.sub(date, text)
    text = _USER.sub(lambda m: names.user(m.group(1)), text)
    text = _CHANNEL.sub(lambda m: (m.group(2) and "#" + m.group(2)) or names.channel(m.group(1)), text)
    text = _SPECIAL.sub(lambda m: "@" + m.group(1), text)
    text = _LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    text = _CODE_BLOCK.sub(lambda m: m.group(1), text)
    text = _CODE.sub(lambda m: m.group(1), text)
    text = _BOLD.sub(lambda m: m.group(1), text)
    lines = []
    for line in text.split("\n"):
        if line.startswith("&gt;") or line.startswith(">"):
            line = "│ " + line.removeprefix("&gt;").removeprefix(">").lstrip()
        lines.append(line)
    return html.unescape("\n".join(lines))


def local_time(at: datetime, now: datetime) -> str:
    """`14:05:12 KST (in 1m 29s)`: the reader's local clock, and for a time ahead how far away it is."""
    local = at.astimezone()
    near = abs((at - now).total_seconds()) < 86400
    shown = local.strftime("%H:%M:%S %Z" if near else "%Y-%m-%d %H:%M %Z").strip()
    if (at - now).total_seconds() >= 1:
        return f"{shown} (in {format_duration(at - now)})"
    return shown


def _text_of(obj: Any) -> str:
    if isinstance(obj, Mapping):
        return str(obj.get("text", ""))
    return str(obj or "")


def buttons_of(blocks: Sequence[Block] | None) -> list[Button]:
    """Every button in the message, in order."""
    found: list[Button] = []
    for block in blocks or []:
        elements: list[Any] = []
        if block.get("type") == "actions":
            elements = list(block.get("elements") or [])
        elif block.get("type") == "section" and isinstance(block.get("accessory"), Mapping):
            elements = [block["accessory"]]
        for element in elements:
            if element.get("type") != "button":
                continue
            found.append(Button(
                action_id=str(element.get("action_id", "")),
                value=str(element.get("value", "")),
                label=_text_of(element.get("text")),
                style=element.get("style"),
                confirm=element.get("confirm"),
            ))
    return found


def render_blocks(blocks: Sequence[Block] | None, fallback: str, names: Names, number: Callable[[Button], int],
                  style: Style | None = None, now: datetime | None = None) -> list[str]:
    """A message's lines. `number(button)` gives each button its number."""
    style = style or Style.plain()
    if not blocks:
        return mrkdwn(fallback, names, now).split("\n") if fallback else []
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(style.bold(mrkdwn(_text_of(block.get("text")), names, now)))
        elif kind == "divider":
            lines.append(style.dim("─" * 40))
        elif kind == "section":
            text = block.get("text")
            if text:
                body = mrkdwn(_text_of(text), names, now)
                lines.extend(body.split("\n"))
            fields = [_field(_text_of(f), names, now) for f in block.get("fields") or []]
            if fields:
                lines.append(" · ".join(fields))
            accessory = block.get("accessory")
            if isinstance(accessory, Mapping) and accessory.get("type") == "button":
                lines.append(_button_line(buttons_of([block]), number, style))
        elif kind == "context":
            parts = [mrkdwn(_text_of(e), names, now) for e in block.get("elements") or []
                     if isinstance(e, Mapping) and e.get("type") in ("mrkdwn", "plain_text")]
            if parts:
                lines.extend(style.dim(line) for line in " ".join(parts).split("\n"))
        elif kind == "actions":
            line = _button_line(buttons_of([block]), number, style)
            if line:
                lines.append(line)
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        else:
            text = block.get("text")
            if text:
                lines.extend(mrkdwn(_text_of(text), names, now).split("\n"))
    return lines


def _field(text: str, names: Names, now: datetime | None) -> str:
    """`*Provider*\\nTelnyx` → `Provider: Telnyx`."""
    head, sep, rest = text.partition("\n")
    if sep and head.startswith("*") and head.endswith("*"):
        return f"{mrkdwn(head, names, now)}: {mrkdwn(rest, names, now).replace(chr(10), ' ')}"
    return mrkdwn(text, names, now).replace("\n", " ")


def _button_line(buttons: list[Button], number: Callable[[Button], int], style: Style) -> str:
    shown = []
    for button in buttons:
        label = f"[{number(button)}] {button.label}"
        shown.append(style.danger(label) if button.style == "danger" else style.button(label))
    return "   ".join(shown)


def confirm_question(confirm: Mapping[str, Any], names: Names) -> tuple[str, str, str]:
    """(question, yes label, no label) for a button's confirmation dialog."""
    title = mrkdwn(_text_of(confirm.get("title")), names)
    text = mrkdwn(_text_of(confirm.get("text")), names)
    yes = _text_of(confirm.get("confirm")) or "Yes"
    no = _text_of(confirm.get("deny")) or "No"
    return (f"{title} {text}".strip(), yes, no)


def indent(tag: str, lines: list[str]) -> list[str]:
    """`tag` before the first line, the others aligned under it."""
    if not lines:
        return [tag.rstrip()]
    pad = " " * len(tag)
    return [tag + lines[0]] + [pad + line for line in lines[1:]]

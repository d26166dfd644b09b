"""Slack's wire format of typed text → what the person typed (pure).

Slack sends a slash command's text with `&`, `<` and `>` escaped (`&amp;`, `&lt;`, `&gt;`) and with
mentions, channels and links as `<…>` tokens. An SMS must carry what was typed, so each token becomes
the text a reader saw in Slack: `<@U1|bob>` → `@bob`, `<!channel>` → `@channel`, `<#C1|ops>` →
`#ops`, `<https://x.io|x.io>` → `https://x.io`, `<mailto:a@b.io|a@b.io>` → `a@b.io`.
Escapes are undone last, so an escaped `&lt;@U1&gt;` (typed literally) stays `<@U1>`.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"<([^<>]*)>")
_SPECIAL = {"channel", "here", "everyone"}


def _token(body: str) -> str:
    inner, _, label = body.partition("|")
    if inner.startswith("@"):  # a user: <@U123> or <@U123|bob>
        return f"@{label or inner[1:]}"
    if inner.startswith("#"):  # a channel: <#C123> or <#C123|ops>
        return f"#{label or inner[1:]}"
    if inner.startswith("!"):
        name = inner[1:]
        if name in _SPECIAL:  # <!channel>, <!here>, <!everyone>
            return f"@{name}"
        if name.startswith("subteam^"):  # a user group: <!subteam^S123|@team>
            return label if label.startswith("@") else f"@{label or name.split('^', 1)[1]}"
        if name.startswith("date^"):  # <!date^1700000000^{date}|fallback>
            return label
        return label or f"@{name}"
    if inner.startswith("mailto:"):
        return inner[len("mailto:"):]
    if inner.startswith("tel:"):
        return label or inner[len("tel:"):]
    return inner  # a link: the URL itself, whatever its label said


def unescape(text: str) -> str:
    """The text as its author typed it, from Slack's escaped form with `<…>` tokens."""
    text = _TOKEN.sub(lambda match: _token(match.group(1)), text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")

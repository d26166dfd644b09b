"""What an operation hands back to be rendered: plain data, no Slack (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Tone(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    ERROR = "error"
    INFO = "info"


@dataclass
class Reply:
    """An answer to the person who asked (ephemeral)."""

    tone: Tone
    text: str
    details: list[str] = field(default_factory=list)
    more: str | None = None  # a paging token for a "More" button (audit)
    confirm_cancel: tuple[int, str] | None = None  # (how many, what) for a "Cancel these" button
    tz: str | None = None


class CardKind(StrEnum):
    SCHEDULED = "scheduled"  # a notice of a scheduled send, with Cancel
    APPROVAL = "approval"  # a request to send now, with Approve and Cancel
    REMINDER = "reminder"  # a send is coming up, with Cancel while it may be cancelled
    CLOSED = "closed"  # what happened; no buttons
    HOLD = "hold"  # a send held by the bot until approved by the rules file, with Approve and Reject


@dataclass
class Card:
    """A channel message about one send (a batch of provider messages, or one group)."""

    kind: CardKind
    record_id: str  # what the buttons are bound to: a batch id, or an approval id
    provider: str
    targets: list[str]
    send_at: datetime | None
    recipient_count: int
    text_preview: str
    owner: str | None
    headline: str
    outcome: str | None = None
    cancel_blocked: str | None = None  # why Cancel is not offered (e.g. the Telnyx guard)
    mention_owner: bool = False
    approval_note: str | None = None  # HOLD: the rule(s) and approvals needed, for the confirm dialog


def inert(text: str) -> str:
    """Text from outside (a provider's answer) made inert in Slack mrkdwn: `<!channel>`, `<@U…>` and
    `<https://…|label>` would otherwise notify people or show a disguised link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

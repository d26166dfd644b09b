"""How operations talk to a channel without knowing it is Slack."""

from __future__ import annotations

from typing import Protocol

from bot.domain.results import Card


class Notifier(Protocol):
    async def post_card(self, channel: str, card: Card) -> str | None:
        """Post; returns the message's ts, or None when it could not be posted."""
        ...

    async def update_card(self, channel: str, ts: str, card: Card) -> bool: ...

    async def post_text(self, channel: str, text: str) -> str | None: ...


class NullNotifier:
    """For the CLI and tests of operations: channel messages go nowhere."""

    async def post_card(self, channel: str, card: Card) -> str | None:
        return None

    async def update_card(self, channel: str, ts: str, card: Card) -> bool:
        return False

    async def post_text(self, channel: str, text: str) -> str | None:
        return None

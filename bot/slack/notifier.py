"""Channel messages through the Slack Web API."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.results import Card
from bot.slack.blocks import card_blocks, card_text

log = logging.getLogger(__name__)


class SlackNotifier:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def post_card(self, channel: str, card: Card) -> str | None:
        try:
            response = await self.client.chat_postMessage(channel=channel, text=card_text(card),
                                                          blocks=card_blocks(card))
        except SlackApiError as error:
            log.warning("could not post to %s: %s", channel, error.response.get("error"))
            return None
        return str(response["ts"])

    async def update_card(self, channel: str, ts: str, card: Card) -> bool:
        try:
            await self.client.chat_update(channel=channel, ts=ts, text=card_text(card), blocks=card_blocks(card))
        except SlackApiError as error:
            log.warning("could not update %s/%s: %s", channel, ts, error.response.get("error"))
            return False
        return True

    async def post_text(self, channel: str, text: str) -> str | None:
        try:
            response = await self.client.chat_postMessage(channel=channel, text=text)
        except SlackApiError as error:
            log.warning("could not post to %s: %s", channel, error.response.get("error"))
            return None
        return str(response["ts"])

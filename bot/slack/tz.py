"""Each reader's time zone from Slack's users.info, cached."""

from __future__ import annotations

import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

TTL = 3600.0


class TimeZones:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._cache: dict[str, tuple[float, str]] = {}

    async def get(self, user: str) -> str:
        """The user's IANA zone name, or "" when Slack does not say."""
        hit = self._cache.get(user)
        if hit is not None and time.monotonic() - hit[0] < TTL:
            return hit[1]
        try:
            response = await self.client.users_info(user=user)
            tz = str((response.get("user") or {}).get("tz") or "")
        except SlackApiError:
            tz = ""  # unknown: the caller falls back to DEFAULT_TZ
        self._cache[user] = (time.monotonic(), tz)
        return tz

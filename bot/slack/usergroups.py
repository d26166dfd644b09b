"""Members of Slack user groups (`@sms-leads` in the approval rules file), from usergroups.list (handle → id)
and usergroups.users.list (members), cached briefly: membership is judged when someone approves, so a member
removed from the group stops counting within TTL seconds."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

TTL = 60.0


class UserGroups:
    def __init__(self, client: AsyncWebClient, now: Callable[[], datetime], ttl: float = TTL) -> None:
        self.client = client
        self.now = now  # the bot's clock (a test sets it rather than waiting out the cache)
        self.ttl = ttl
        self._ids: tuple[datetime, dict[str, str]] | None = None  # (fetched, handle → usergroup id)
        self._members: dict[str, tuple[datetime, frozenset[str]]] = {}

    def _fresh(self, fetched: datetime) -> bool:
        return (self.now() - fetched).total_seconds() < self.ttl

    async def members(self, handle: str) -> frozenset[str]:
        """The user ids in `@handle` now; empty when Slack knows no such group or cannot say (then nobody
        counts through it, which errs on the side of not sending)."""
        name = handle.lstrip("@").lower()
        group_id = (await self._group_ids()).get(name)
        if group_id is None:
            return frozenset()
        hit = self._members.get(group_id)
        if hit is not None and self._fresh(hit[0]):
            return hit[1]
        try:
            response = await self.client.usergroups_users_list(usergroup=group_id)
        except SlackApiError as error:
            log.warning("usergroups.users.list failed for %s: %s", handle, error.response.get("error"))
            return frozenset()
        users = frozenset(str(u) for u in response.get("users") or [])
        self._members[group_id] = (self.now(), users)
        return users

    async def _group_ids(self) -> dict[str, str]:
        if self._ids is not None and self._fresh(self._ids[0]):
            return self._ids[1]
        try:
            response = await self.client.usergroups_list()
        except SlackApiError as error:
            log.warning("usergroups.list failed: %s", error.response.get("error"))
            return self._ids[1] if self._ids is not None else {}
        ids = {str(g.get("handle", "")).lower(): str(g.get("id", "")) for g in response.get("usergroups") or []
               if not g.get("date_delete")}
        self._ids = (self.now(), ids)
        return ids

"""App Home: the viewer's upcoming sends, pending approvals with their buttons, recent activity."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.operations.approval import approval_card
from bot.operations.common import when
from bot.operations.services import Services
from bot.providers.registry import display
from bot.slack.blocks import card_blocks
from bot.slack.ids import ActionId
from db.audit import AuditFilter, action_words, query

log = logging.getLogger(__name__)


async def home_view(services: Services, user: str, notice: str | None = None) -> dict[str, Any]:
    """The tab as `user` sees it now; `notice` is the answer to a button pressed in the tab itself."""
    now = services.now()
    sends = await services.db(services.store.upcoming, now, user, 10)
    approvals = await services.db(services.store.pending_approvals, now, 5)
    recent = await services.db(query, services.engine, AuditFilter(actor=user, limit=10))
    answer: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": notice[:2900]}}, {"type": "divider"},
    ] if notice else []
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your SMS"}},
        *answer,
        {"type": "actions", "block_id": "home", "elements": [{
            "type": "button", "action_id": ActionId.COMPOSE, "style": "primary",
            "text": {"type": "plain_text", "text": "Schedule SMS"}, "value": "compose"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Upcoming sends*\n" + (
            "\n".join(f"• {when(s.send_at)} · {display(s.provider)} `{s.target}` · {s.recipient_count} "
                      f"recipient(s)" for s in sends) or "Nothing scheduled.")}},
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Waiting for approval*" + (
            "" if approvals else "\nNone.")}},
    ]
    for item in approvals:
        send = await services.db(services.store.get_send, item.send_id)
        if send is not None:
            blocks.extend(card_blocks(approval_card(send, item)))
    blocks += [
        {"type": "divider"},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Your recent activity*\n" + (
            "\n".join(f"• {when(e.at)} *{action_words(e.action)}* {display(e.provider or '')} `{e.target or '-'}` "
                      f"({e.outcome})" for e in recent) or "Nothing yet.")}},
    ]
    return {"type": "home", "blocks": blocks[:100]}


class HomeRespond:
    """Stands in for `respond` when a button was pressed in the Home tab: Slack gives such a click no
    response_url, so the answer is shown by publishing the tab again, with the answer on top."""

    def __init__(self, services: Services, client: AsyncWebClient, user: str) -> None:
        self.services, self.client, self.user = services, client, user

    async def __call__(self, text: str | None = None, **_: Any) -> None:
        await self.client.views_publish(user_id=self.user, view=await home_view(self.services, self.user, text))


def register(app: AsyncApp, services: Services) -> None:
    async def opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = event.get("user", "")
        await client.views_publish(user_id=user, view=await home_view(services, user))

    app.event("app_home_opened")(opened)

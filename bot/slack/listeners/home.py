"""App Home: the viewer's upcoming sends, pending approvals with their buttons, recent activity."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.operations.approval import approval_card
from bot.operations.common import when
from bot.providers.registry import display
from bot.services import Services
from bot.slack.blocks import card_blocks
from db.audit import AuditFilter, query

log = logging.getLogger(__name__)


async def home_view(services: Services, user: str) -> dict[str, Any]:
    now = services.now()
    sends = await services.db(services.store.upcoming, now, user, 10)
    approvals = await services.db(services.store.pending_approvals, now, 5)
    recent = await services.db(query, services.engine, AuditFilter(actor=user, limit=10))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your SMS"}},
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
            "\n".join(f"• {when(e.at)} *{e.action}* {display(e.provider or '')} `{e.target or '-'}` "
                      f"({e.outcome})" for e in recent) or "Nothing yet.")}},
    ]
    return {"type": "home", "blocks": blocks[:100]}


def register(app: AsyncApp, services: Services) -> None:
    async def opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        if event.get("tab") not in (None, "home"):
            return
        user = event.get("user", "")
        await client.views_publish(user_id=user, view=await home_view(services, user))

    app.event("app_home_opened")(opened)

"""Modals: the compose form (from `/sms schedule`, the "Schedule SMS" shortcut and App Home), its preview,
and "Change time" on notices and reminders. A submission is answered in its HTTP response (errors on the
field, the preview, or closed); the work after "Schedule" or "Move it" runs after the ack, and its answer
goes to the person as an ephemeral message where the form was opened (or a DM)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import commands
from bot.domain.results import Reply, Tone
from bot.domain.when import zone
from bot.operations import reschedule, schedule
from bot.operations.common import Invoker
from bot.operations.services import Services
from bot.providers.registry import display
from bot.slack import views
from bot.slack.blocks import reply_blocks, reply_text
from bot.slack.ids import ActionId
from bot.slack.listeners.context import apology, finish_request, new_request_id, open_request, quoted

log = logging.getLogger("bot.slack")


async def user_zone(services: Services, user: str) -> ZoneInfo:
    """The user's Slack zone (DEFAULT_TZ when Slack does not say within a second)."""
    name = None
    if services.tz_of is not None:
        try:
            name = await asyncio.wait_for(services.tz_of(user), 1.0)
        except Exception:  # the zone only sets the pickers' defaults and how a time is read
            log.warning("could not read the user's time zone; using DEFAULT_TZ", exc_info=True)
    return zone(name, services.settings.default_tz)


async def open_compose(services: Services, client: AsyncWebClient, trigger_id: str, user: str,
                       channel: str | None) -> bool:
    """Open the form; False when Slack would not (an expired trigger, or no Slack modals here)."""
    tz = await user_zone(services, user)
    view = views.compose_form(list(services.providers), services.now(), tz, channel)
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as error:
        log.warning("could not open the compose form: %s", error.response.get("error"))
        return False
    return True


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _invoker(body: dict[str, Any], channel: str | None, rid: str) -> Invoker:
    user = body.get("user") or {}
    return Invoker(user=str(user.get("id") or ""), team=(body.get("team") or {}).get("id") or user.get("team_id"),
                   channel=channel or None, request_id=rid, name=user.get("username") or user.get("name"))


async def tell(client: AsyncWebClient, who: Invoker, reply: Reply) -> None:
    """An answer only `who` sees: ephemeral in the channel the form was about, else a DM from the bot."""
    if who.channel:
        try:
            await client.chat_postEphemeral(channel=who.channel, user=who.user, text=reply_text(reply),
                                            blocks=reply_blocks(reply))
            return
        except SlackApiError as error:  # not in the channel: say it in a DM instead
            log.info("ephemeral answer not possible: %s", error.response.get("error"))
    await client.chat_postMessage(channel=who.user, text=reply_text(reply), blocks=reply_blocks(reply))


def register(app: AsyncApp, services: Services) -> None:
    async def on_shortcut(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await open_compose(services, client, str(body.get("trigger_id", "")), _user(body), None)

    async def on_home_compose(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await open_compose(services, client, str(body.get("trigger_id", "")), _user(body), None)

    async def on_form(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        meta = views.metadata(view)
        tz = zone(meta.get("tz"), services.settings.default_tz)
        values = views.typed(view)
        draft = views.read_form(values, list(services.providers), services.now(), tz,
                                services.settings.default_region, meta.get("channel") or None)
        if isinstance(draft, dict):
            await ack(response_action="errors", errors=draft)
            return
        await ack(response_action="update", view=views.preview(
            draft, services.now(), tz, services.settings.telnyx_cancel_guard, values))

    async def on_back(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        view = body.get("view") or {}
        meta = views.metadata(view)
        draft = meta.get("draft") or {}
        form = views.compose_form(list(services.providers), services.now(),
                                  zone(meta.get("tz"), services.settings.default_tz), draft.get("channel") or None,
                                  kept=meta.get("kept") or {})
        await client.views_update(view_id=str(view.get("id", "")), hash=view.get("hash"), view=form)

    async def on_preview(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
                         context: dict[str, Any]) -> None:
        rid = context.get("request_id") or new_request_id()
        try:
            draft = views.Draft.from_json(views.metadata(view)["draft"])
        except (KeyError, ValueError, TypeError):
            await ack(response_action="errors", errors={"back": "This preview could not be read; go back."})
            return
        who = _invoker(body, draft.channel, rid)
        # Exactly once: a second submission of the same view (a retry, a double press) schedules nothing.
        if not await services.db(services.store.first_time, f"compose:{view.get('id')}", urgent=True):
            await ack(response_action="clear")
            return
        request = await open_request(services, who, quoted(f"compose form: schedule with {draft.provider} to "
                                                           f"{len(draft.to)} recipient(s)"))
        await ack(response_action="clear")
        cmd = commands.Schedule(draft.provider, draft.to, draft.send_at, draft.text)
        try:
            reply = await schedule.schedule(services, who, cmd)
        except Exception:
            log.exception("listener failed", extra={"request_id": rid})
            reply = apology(rid)
        await tell(client, who, reply)
        await finish_request(services, request, who)

    async def on_change_time(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                             client: AsyncWebClient) -> None:
        await ack()
        batch_id = str(action.get("value", ""))
        sends = await services.db(services.store.batch, batch_id)
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
        if not sends:
            await tell(client, _invoker(body, channel, new_request_id()),
                       Reply(Tone.ERROR, "This button's send is not in the ledger; nothing was changed."))
            return
        first = sends[0]
        tz = await user_zone(services, _user(body))
        label = f"{display(first.provider)} `{first.target}` to {sum(s.recipient_count for s in sends)} recipient(s)"
        form = views.reschedule_form(batch_id, label, first.send_at, tz, channel)
        try:
            await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=form)
        except SlackApiError as error:
            await tell(client, _invoker(body, channel, new_request_id()), Reply(
                Tone.ERROR, f"The form did not open ({error.response.get('error')}). Type "
                            f"`/sms reschedule {first.target} at <when>` instead."))

    async def on_reschedule(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient,
                            context: dict[str, Any]) -> None:
        rid = context.get("request_id") or new_request_id()
        meta = views.metadata(view)
        tz = zone(meta.get("tz"), services.settings.default_tz)
        try:
            send_at = commands.read_only_time(views.typed(view).get(views.WHEN, ""), services.now(), tz)
        except commands.UsageError as error:
            await ack(response_action="errors", errors={views.WHEN: views.sentence(error.message)})
            return
        who = _invoker(body, meta.get("channel") or None, rid)
        if not await services.db(services.store.first_time, f"reschedule:{view.get('id')}", urgent=True):
            await ack(response_action="clear")
            return
        request = await open_request(services, who, quoted(f"Change time of batch {meta.get('batch')}"))
        await ack(response_action="clear")
        try:
            reply = await reschedule.reschedule_batch(services, who, str(meta.get("batch", "")), send_at)
        except Exception:
            log.exception("listener failed", extra={"request_id": rid})
            reply = apology(rid)
        await tell(client, who, reply)
        await finish_request(services, request, who)

    app.shortcut("sms_compose")(on_shortcut)  # the manifest's shortcut callback_id (views.COMPOSE)
    app.action(ActionId.COMPOSE.value)(on_home_compose)
    app.action(ActionId.RESCHEDULE.value)(on_change_time)
    app.action(views.BACK)(on_back)
    app.view(views.COMPOSE)(on_form)
    app.view(views.PREVIEW)(on_preview)
    app.view(views.RESCHEDULE)(on_reschedule)

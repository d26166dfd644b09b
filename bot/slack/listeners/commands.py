"""/sms: parse, ack at once, then do the work and answer through response_url."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain import commands
from bot.domain.results import Reply, Tone
from bot.domain.when import zone
from bot.infra.metrics import ACK_SECONDS, COMMANDS
from bot.operations.bulk import cancel_many, preview_mine, progress_bar
from bot.operations.common import Invoker
from bot.operations.dispatch import progress_text, run
from bot.operations.services import Services
from bot.providers.base import ProviderError
from bot.providers.http import retry_listener
from bot.providers.registry import display
from bot.slack.blocks import help_blocks, reply_blocks, reply_text
from bot.slack.listeners.context import (
    answer,
    apology,
    finish_request,
    guarded,
    invoker_from_command,
    new_request_id,
    open_request,
    quoted,
)
from bot.slack.listeners.views import open_compose

log = logging.getLogger("bot.slack")


def register(app: AsyncApp, services: Services) -> None:
    async def sms(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: dict[str, Any]) -> None:
        started = time.perf_counter()
        rid = context.get("request_id") or new_request_id()
        try:
            parsed = commands.parse(command.get("text") or "", services.now(), await _writer_zone(services, command),
                                    default_region=services.settings.default_region)
        except commands.UsageError as error:
            usage = f"\nUsage: `{error.usage}`" if error.usage else "\nType `/sms help` for every command."
            reply = Reply(Tone.ERROR, f"{error.message}.{usage}" if not error.message.endswith(".")
                          else f"{error.message}{usage}")
            await ack(text=reply_text(reply), blocks=reply_blocks(reply), response_type="ephemeral")
            _observe(started, "usage_error", "error")
            return
        except Exception:  # a bug before the ack: still a short apology with the id, never a bare 500
            log.exception("listener failed", extra={"request_id": rid})
            reply = apology(rid)
            await ack(text=reply_text(reply), blocks=reply_blocks(reply), response_type="ephemeral")
            _observe(started, "error", "error")
            return
        verb = type(parsed).__name__.lower()
        if isinstance(parsed, commands.Help):
            user = str(command.get("user_id") or "")
            blocks = help_blocks(parsed.verb, services.now(), admin=services.permissions.is_admin(user),
                                 auditor=services.permissions.may_read_all_audit(user))
            await ack(text="/sms commands", blocks=blocks, response_type="ephemeral")
            _observe(started, verb, "ok")
            return
        if isinstance(parsed, commands.Compose):  # the form; where Slack can't open it, the one-line way
            await ack()
            if not await open_compose(services, app.client, str(command.get("trigger_id") or ""),
                                      str(command.get("user_id") or ""), command.get("channel_id")):
                reply = Reply(Tone.INFO, "The form did not open here. Type it in one line: `"
                              + commands.USAGE["schedule"].split("   ")[0] + "`.")
                await respond(text=reply_text(reply), blocks=reply_blocks(reply), response_type="ephemeral")
            _observe(started, verb, "ok")
            return
        who = invoker_from_command(command, rid)
        request = await open_request(services, who, quoted("/sms " + (command.get("text") or "")))
        ack_text = ("⏳ Finding your upcoming sends…" if isinstance(parsed, commands.CancelMine)
                    else progress_text(parsed))
        await ack(text=ack_text, response_type="ephemeral")
        ACK_SECONDS.labels(kind="command").observe(time.perf_counter() - started)

        bulk = isinstance(parsed, commands.Cancel) and len(parsed.targets) > 1

        async def work() -> None:
            told: set[str] = set()

            async def on_retry(provider: str, attempt: int, error: ProviderError) -> None:
                if bulk or provider in told:  # one note per provider: response_url allows 5 uses;
                    return  # a bulk cancel's progress message shows it is still going
                told.add(provider)
                await respond(text=f"⏳ {display(provider)} is slow ({error.kind}), retrying…",
                              response_type="ephemeral", replace_original=False, delete_original=False)

            token = retry_listener.set(on_retry)
            try:
                if isinstance(parsed, commands.CancelMine):  # a list and a confirm button (actions.py)
                    reply = await preview_mine(services, who, parsed)
                elif bulk:
                    assert isinstance(parsed, commands.Cancel)
                    progress = _bulk_progress(app.client, who, respond)
                    reply = await cancel_many(services, who, list(parsed.targets), progress)
                    await progress.finish(reply)
                else:
                    reply = await run(services, who, parsed)
            finally:
                retry_listener.reset(token)
            COMMANDS.labels(command=verb, outcome=reply.tone.value).inc()
            await answer(respond, reply)

        await guarded(respond, rid, work)
        await finish_request(services, request, who)  # after the answer: a crash before it is reported

    app.command("/sms")(sms)


async def _writer_zone(services: Services, command: dict[str, Any]) -> ZoneInfo:
    """The invoker's Slack time zone (users.info, cached an hour), for a schedule's time written without an
    offset; DEFAULT_TZ when Slack does not say or does not answer within a second."""
    default = services.settings.default_tz
    verb = (command.get("text") or "").lstrip().lower()
    if not verb.startswith(("schedule", "reschedule")) or services.tz_of is None:
        return zone(None, default)
    try:
        name = await asyncio.wait_for(services.tz_of(str(command.get("user_id") or "")), 1.0)
    except Exception:  # the zone is looked up to read the time; its absence must not fail the command
        log.warning("could not read the invoker's time zone; using DEFAULT_TZ", exc_info=True)
        name = None
    return zone(name, default)


def _observe(started: float, verb: str, outcome: str) -> None:
    ACK_SECONDS.labels(kind="command").observe(time.perf_counter() - started)
    COMMANDS.labels(command=verb, outcome=outcome).inc()


PROGRESS_EVERY = 1.2  # seconds between chat.update calls: Slack's Tier 3 allows about 50 a minute
PROGRESS_MESSAGE_MIN = 10  # a smaller job gets no progress message, just its answer


class BulkProgress:
    """One channel message with a progress bar (`1,200 / 3,000 ▓▓▓▓░░░░░░`): posted when a bulk cancel
    starts, updated at most every PROGRESS_EVERY seconds in the background (the cancels never wait for
    Slack), and ending with the summary. Where the bot may not post (a DM, a channel it is not in), the
    ephemeral reply is updated instead, at most three times (a response_url allows five uses)."""

    def __init__(self, client: AsyncWebClient, who: Invoker, respond: AsyncRespond) -> None:
        self.client = client
        self.who = who
        self.respond = respond
        self.ts: str | None = None  # the progress message, once posted
        self.updates = 0
        self._fallback = False
        self._marks: set[int] = set()
        self._next = 0.0
        self._task: asyncio.Task[float | None] | None = None

    def _text(self, done: int, total: int) -> str:
        return f"⏳ <@{self.who.user}> is cancelling {total:,} scheduled sends: {progress_bar(done, total)}"

    async def __call__(self, done: int, total: int) -> None:
        if total < PROGRESS_MESSAGE_MIN or done >= total:
            return  # the summary takes the bar's place
        if done == 0:
            await self._post(total)
            return
        if self._fallback:
            await self._ephemeral(done, total)
            return
        now = time.monotonic()
        if self.ts is None or now < self._next or (self._task is not None and not self._task.done()):
            return
        self._next = now + PROGRESS_EVERY
        self._task = asyncio.create_task(self._update(self._text(done, total)))

    async def finish(self, reply: Reply) -> None:
        """Replace the bar with the summary (the details go to the ephemeral answer)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.ts is None:
            return
        done = Reply(reply.tone, f"<@{self.who.user}>'s bulk cancel is done.\n{reply.text}")
        for _ in range(3):  # the summary matters: wait out Slack's rate limit for it
            wait = await self._update(reply_text(done), reply_blocks(done))
            if wait is None:
                return
            await asyncio.sleep(min(wait, 30.0))

    async def _post(self, total: int) -> None:
        channel = self.who.channel
        try:
            if not channel:
                raise ValueError("no channel")
            response = await self.client.chat_postMessage(channel=channel, text=self._text(0, total))
            self.ts = str(response["ts"])
            self._next = time.monotonic() + PROGRESS_EVERY
        except (SlackApiError, ValueError) as error:  # not_in_channel, channel_not_found (a DM), …
            reason = error.response.get("error") if isinstance(error, SlackApiError) else str(error)
            log.info("bulk progress goes to the ephemeral reply", extra={"reason": reason})
            self._fallback = True

    async def _update(self, text: str, blocks: list[dict[str, Any]] | None = None) -> float | None:
        """chat.update; returns the seconds Slack asks to wait when it is rate-limiting, else None."""
        assert self.ts is not None and self.who.channel
        try:
            await self.client.chat_update(channel=self.who.channel, ts=self.ts, text=text, blocks=blocks or [])
            self.updates += 1
        except SlackApiError as error:
            if error.response.get("error") == "ratelimited":
                wait = float(error.response.headers.get("Retry-After", 1) or 1)
                self._next = max(self._next, time.monotonic() + wait)
                return wait
            log.warning("could not update the bulk progress message: %s", error.response.get("error"))
        except Exception:  # progress is a courtesy: never let it break the cancels
            log.exception("could not update the bulk progress message")
        return None

    async def _ephemeral(self, done: int, total: int) -> None:
        step = min(3, int(3 * done / total))
        if step in self._marks or step == 0:
            return
        self._marks.add(step)
        await self.respond(text=f"Cancelling… {progress_bar(done, total)}", response_type="ephemeral",
                           replace_original=True, delete_original=False)


def _bulk_progress(client: AsyncWebClient, who: Invoker, respond: AsyncRespond) -> BulkProgress:
    return BulkProgress(client, who, respond)

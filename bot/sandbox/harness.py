"""The bot, running for real on 127.0.0.1, talked to as Slack talks to it: signed HTTP."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from bot.domain.clock import Clock
from bot.infra.settings import Settings
from bot.sandbox.server import FakeServer, LocalService
from bot.sandbox.slack import TEAM_ID, FakeSlack
from bot.server.runtime import Runtime

SIGNING_SECRET = "test-signing-secret-5f2c"
BOT_TOKEN = "xoxb-test-token"


def sign(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body) or ""  # None: no body
    return {"x-slack-request-timestamp": ts, "x-slack-signature": signature}


class BotHarness(LocalService):
    """Starts the bot's ASGI app (with its lifespan: migrations, reminders, reconciliation)."""

    def __init__(self, slack: FakeSlack, database_url: str, clock: Clock | None = None,
                 **settings: Any) -> None:
        self.slack = slack
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": slack.api_url,
            "database_url": database_url,
            "provider_connect_timeout": 2.0,
            "provider_read_timeout": 3.0,
        }
        values.update(settings)
        self.settings = Settings(_env_file=None, **values)
        self.runtime = Runtime(self.settings, clock=clock)
        self.server = FakeServer(self.runtime.asgi(), lifespan="on")
        self.http = httpx.Client(timeout=30)

    @property
    def services(self) -> Any:
        return self.runtime.services

    def stop(self) -> None:
        self.http.close()
        super().stop()

    # --- what Slack sends ---------------------------------------------------------------------
    def post_signed(self, body: str, content_type: str = "application/x-www-form-urlencoded",
                    headers: dict[str, str] | None = None, timestamp: int | None = None) -> httpx.Response:
        all_headers = {"content-type": content_type, **sign(body, timestamp)}
        all_headers.update(headers or {})
        return self.http.post(f"{self.url}/slack/events", content=body.encode(), headers=all_headers)

    def command(self, text: str, user: str = "U0ALICE01", channel: str = "C0OPS0001",
                response_token: str | None = None, **extra: Any) -> tuple[httpx.Response, str]:
        """Send `/sms <text>`; returns the HTTP response and the response_url token to read replies."""
        token = response_token or uuid.uuid4().hex
        form = {
            "token": "legacy-verification-token", "team_id": TEAM_ID, "team_domain": "test",
            "channel_id": channel, "channel_name": "ops", "user_id": user, "user_name": user.lower(),
            "command": "/sms", "text": text, "api_app_id": "A0SMSOPS1", "is_enterprise_install": "false",
            "response_url": self.slack.response_url(token), "trigger_id": self.slack.new_trigger(user),
        }
        form.update(extra)
        return self.post_signed(urlencode(form)), token

    def click(self, action_id: str, value: str, user: str = "U0ALICE01", channel: str = "C0OPS0001",
              message_ts: str = "1.000001", is_ephemeral: bool = False,
              response_token: str | None = None) -> tuple[httpx.Response, str]:
        token = response_token or uuid.uuid4().hex
        payload = {
            "type": "block_actions",
            "team": {"id": TEAM_ID, "domain": "test"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
            "api_app_id": "A0SMSOPS1",
            "token": "legacy-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": is_ephemeral},
            "trigger_id": self.slack.new_trigger(user),
            "channel": {"id": channel, "name": "ops"},
            "message": {"type": "message", "ts": message_ts, "text": ""},
            "response_url": self.slack.response_url(token),
            "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                         "action_ts": f"{time.time():.6f}"}],
        }
        body = urlencode({"payload": json.dumps(payload)})
        return self.post_signed(body), token

    def shortcut(self, callback_id: str, user: str = "U0ALICE01") -> httpx.Response:
        """A global shortcut (the ⚡ menu), as Slack sends it: no channel, a trigger id."""
        payload = {"type": "shortcut", "token": "legacy-verification-token", "action_ts": f"{time.time():.6f}",
                   "team": {"id": TEAM_ID, "domain": "test"}, "user": {"id": user, "username": user.lower(),
                                                                     "team_id": TEAM_ID},
                   "is_enterprise_install": False, "callback_id": callback_id,
                   "trigger_id": self.slack.new_trigger(user)}
        return self.post_signed(urlencode({"payload": json.dumps(payload)}))

    def click_in_home(self, action_id: str, value: str = "", user: str = "U0ALICE01") -> httpx.Response:
        """A button pressed in the App Home tab: no response_url, no channel."""
        payload = {"type": "block_actions", "team": {"id": TEAM_ID, "domain": "test"},
                   "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID}, "api_app_id": "A0SMSOPS1",
                   "token": "legacy-verification-token", "container": {"type": "view", "view_id": "VHOME0001"},
                   "trigger_id": self.slack.new_trigger(user), "view": {"id": "VHOME0001", "type": "home"},
                   "actions": [{"action_id": action_id, "block_id": "home", "value": value, "type": "button",
                                "action_ts": f"{time.time():.6f}"}]}
        return self.post_signed(urlencode({"payload": json.dumps(payload)}))

    def modal(self, user: str = "U0ALICE01", timeout: float = 5.0) -> dict[str, Any]:
        """The modal on top for `user`, once one is open."""
        def top() -> dict[str, Any] | None:
            shown = self.slack.open_modals(user)
            return shown[-1] if shown else None
        return self.slack.wait_for(top, timeout)

    def submit_view(self, view: dict[str, Any], values: dict[str, str | None] | None = None,
                    user: str = "U0ALICE01") -> httpx.Response:
        """Press the modal's submit button with `values` typed in (by block id; others keep their initial
        value), as Slack sends it (view.state.values by block and action id); Slack then does what the
        answer says (update, push, errors, clear)."""
        state = view_state(view, values or {})
        shown = {**view, "state": {"values": state}}
        payload = {"type": "view_submission", "team": {"id": TEAM_ID, "domain": "test"},
                   "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID}, "api_app_id": "A0SMSOPS1",
                   "token": "legacy-verification-token", "trigger_id": self.slack.new_trigger(user),
                   "view": shown, "response_urls": [], "is_enterprise_install": False}
        response = self.post_signed(urlencode({"payload": json.dumps(payload)}))
        answer = response.json() if response.content and "json" in response.headers.get("content-type", "") else {}
        if response.status_code == 200:
            self.slack.apply_view_response(view["id"], answer)
        return response

    def click_in_view(self, view: dict[str, Any], action_id: str, value: str = "",
                      user: str = "U0ALICE01") -> httpx.Response:
        """A button pressed inside a modal (no response_url; the view as it stands)."""
        payload = {"type": "block_actions", "team": {"id": TEAM_ID, "domain": "test"},
                   "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID}, "api_app_id": "A0SMSOPS1",
                   "token": "legacy-verification-token", "container": {"type": "view", "view_id": view["id"]},
                   "trigger_id": self.slack.new_trigger(user), "view": view,
                   "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                                "action_ts": f"{time.time():.6f}"}]}
        return self.post_signed(urlencode({"payload": json.dumps(payload)}))

    # --- what the bot answered --------------------------------------------------------------
    def replies(self, token: str) -> list[dict[str, Any]]:
        return self.slack.responses_to(token)

    def final_reply(self, token: str, timeout: float = 10.0) -> dict[str, Any]:
        """The last response_url post that is not a progress note."""
        def done() -> dict[str, Any] | None:
            finals = [r for r in self.replies(token) if not str(r.get("text", "")).startswith("⏳")]
            return finals[-1] if finals else None
        return self.slack.wait_for(done, timeout)


def reply_text(payload: dict[str, Any]) -> str:
    """Everything a person would read in a reply: its text and its blocks' text."""
    parts = [str(payload.get("text", ""))]
    for block in payload.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            parts.append(str(text.get("text", "")))
        for f in block.get("fields") or []:
            parts.append(str(f.get("text", "")))
        for element in block.get("elements") or []:
            if isinstance(element.get("text"), dict):
                parts.append(str(element["text"].get("text", "")))
            elif isinstance(element.get("text"), str):
                parts.append(element["text"])
    return "\n".join(parts)


def view_state(view: dict[str, Any], values: dict[str, str | None]) -> dict[str, Any]:
    """view.state.values as Slack builds it: every input's value (typed, else its initial one) in the
    shape of its element."""
    state: dict[str, Any] = {}
    for block in view.get("blocks") or []:
        if block.get("type") != "input":
            continue
        element, block_id = block["element"], block["block_id"]
        kind, action_id = element["type"], element["action_id"]
        typed = values[block_id] if block_id in values else None
        if kind == "plain_text_input":
            value: dict[str, Any] = {"value": typed if block_id in values else element.get("initial_value")}
        elif kind == "static_select":
            chosen = typed if block_id in values else (element.get("initial_option") or {}).get("value")
            option = next((o for o in element.get("options", []) if o["value"] == chosen), None)
            value = {"selected_option": option}
        elif kind == "datepicker":
            value = {"selected_date": typed if block_id in values else element.get("initial_date")}
        elif kind == "timepicker":
            value = {"selected_time": typed if block_id in values else element.get("initial_time")}
        elif kind == "conversations_select":
            value = {"selected_conversation": typed if block_id in values else element.get("initial_conversation")}
        else:
            continue
        state[block_id] = {action_id: {"type": kind, **value}}
    return state


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b.get("elements", [])
            if e.get("type") == "button"]

"""A fake Slack Web API (and response_url endpoint) that records every call, as Slack would see it."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bot.sandbox.server import FakeServer, LocalService

BOT_USER_ID = "UBOT00001"
TRIGGER_TTL = 3.0  # Slack: a trigger_id opens a modal within 3 seconds of the click or command, once
TEAM_ID = "T0TEST001"


@dataclass
class SlackCall:
    method: str
    args: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass
class PostedMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier versions, oldest first


class FakeSlack(LocalService):
    """State: posted messages by (channel, ts), every Web API call, every response_url post."""

    def __init__(self, token: str = "xoxb-test-token", user_tz: dict[str, str] | None = None,
                 app_token: str = "xapp-1-test-app-token") -> None:
        self.token = token
        self.app_token = app_token
        self.socket_acks: dict[str, dict[str, Any]] = {}  # Socket Mode: envelope id -> the app's ack
        self._sockets: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]] = []
        self.user_tz = user_tz or {}
        self.calls: list[SlackCall] = []
        self.responses: list[tuple[str, dict[str, Any]]] = []  # (response_url token, payload)
        self.messages: dict[tuple[str, str], PostedMessage] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, tuple[str, float]] = {}  # trigger id -> (user, issued at, monotonic)
        self.modals: dict[str, dict[str, Any]] = {}  # open modals by view id, as Slack holds them now
        self.modal_user: dict[str, str] = {}
        self.view_errors: dict[str, dict[str, str]] = {}  # the last `response_action: errors` per view
        self.usergroups: dict[str, dict[str, Any]] = {}  # id -> usergroups.list's object (+ "users")
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._response_uses: dict[str, int] = {}
        app = Starlette(routes=[
            Route("/api/{method}", self._api, methods=["GET", "POST"]),
            Route("/response/{token}", self._response, methods=["POST"]),
            WebSocketRoute("/link", self._socket),
        ])
        self.server = FakeServer(app)

    # --- lifecycle -------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.server.url}/api/"

    def response_url(self, token: str = "") -> str:
        return f"{self.server.url}/response/{token or next(self._ts)}"

    # --- modals ------------------------------------------------------------------------------
    def new_trigger(self, user: str) -> str:
        """A trigger id, as Slack puts in a command, a click or a shortcut (valid 3 s, used once)."""
        trigger = f"{next(self._ts)}.{int(time.time())}.{uuid.uuid4().hex[:16]}"
        with self._lock:
            self.triggers[trigger] = (user, time.monotonic())
        return trigger

    def _take_trigger(self, trigger_id: str) -> tuple[str | None, str | None]:
        """(user, None), or (None, Slack's error) for a trigger that is unknown, used or too old."""
        with self._lock:
            found = self.triggers.pop(trigger_id, None)
        if found is None:
            return None, "invalid_trigger_id"
        if time.monotonic() - found[1] > TRIGGER_TTL:
            return None, "expired_trigger_id"
        return found[0], None

    def _new_modal(self, view: dict[str, Any], user: str, root: str | None = None,
                   previous: str | None = None) -> dict[str, Any]:
        view_id = f"V{next(self._ts):08d}"
        shown = {**view, "id": view_id, "hash": uuid.uuid4().hex[:16], "root_view_id": root or view_id,
                 "previous_view_id": previous, "team_id": TEAM_ID, "state": {"values": {}}}
        with self._lock:
            self.modals[view_id] = shown
            self.modal_user[view_id] = user
        return shown

    def _replace_modal(self, view_id: str, view: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            old = self.modals[view_id]
            shown = {**view, "id": view_id, "hash": uuid.uuid4().hex[:16], "root_view_id": old["root_view_id"],
                     "previous_view_id": old.get("previous_view_id"), "team_id": TEAM_ID,
                     "state": {"values": {}}}
            self.modals[view_id] = shown
            self.view_errors.pop(view_id, None)
        return shown

    def open_modals(self, user: str) -> list[dict[str, Any]]:
        """The modals `user` sees, the top one last."""
        with self._lock:
            return [v for vid, v in self.modals.items() if self.modal_user.get(vid) == user]

    def apply_view_response(self, view_id: str, answer: dict[str, Any]) -> None:
        """What Slack does with the app's answer to a view_submission (empty: the view closes)."""
        action = answer.get("response_action")
        with self._lock:
            current = self.modals.get(view_id)
        if current is None:
            return
        if action == "errors":
            with self._lock:
                self.view_errors[view_id] = dict(answer.get("errors") or {})
        elif action == "update":
            self._replace_modal(view_id, answer["view"])
        elif action == "push":
            self._new_modal(answer["view"], self.modal_user[view_id], current["root_view_id"], view_id)
        else:  # nothing, or "clear": closed (clear closes the whole stack)
            with self._lock:
                root = current["root_view_id"]
                for vid in [v for v, shown in self.modals.items()
                            if v == view_id or (action == "clear" and shown["root_view_id"] == root)]:
                    self.modals.pop(vid, None)

    def _m_views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        user, error = self._take_trigger(str(args.get("trigger_id", "")))
        if error or user is None:
            return {"ok": False, "error": error}
        if not isinstance(args.get("view"), dict) or args["view"].get("type") != "modal":
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "view": self._new_modal(args["view"], user)}

    def _m_views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        user, error = self._take_trigger(str(args.get("trigger_id", "")))
        if error or user is None:
            return {"ok": False, "error": error}
        with self._lock:
            top = [v for vid, v in self.modals.items() if self.modal_user.get(vid) == user]
        if not top:
            return {"ok": False, "error": "not_found"}  # views.push needs an open modal
        return {"ok": True, "view": self._new_modal(args["view"], user, top[-1]["root_view_id"], top[-1]["id"])}

    def _m_views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id = str(args.get("view_id", ""))
        with self._lock:
            current = self.modals.get(view_id)
        if current is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        return {"ok": True, "view": self._replace_modal(view_id, args["view"])}
    # --- workspace state tests set ----------------------------------------------------------
    def set_usergroup(self, handle: str, users: list[str]) -> str:
        """Create the user group `@handle`, or change its members (as an admin would in Slack); its id."""
        handle = handle.lstrip("@")
        with self._lock:
            for group_id, group in self.usergroups.items():
                if group["handle"] == handle:
                    group["users"], group["user_count"] = list(users), len(users)
                    group["date_update"] = int(time.time())
                    return group_id
            group_id = f"S{len(self.usergroups) + 1:08d}"
            now = int(time.time())
            self.usergroups[group_id] = {
                "id": group_id, "team_id": TEAM_ID, "is_usergroup": True, "is_subteam": True,
                "name": handle.replace("-", " ").title(), "description": "", "handle": handle,
                "is_external": False, "date_create": now, "date_update": now, "date_delete": 0,
                "auto_type": None, "auto_provision": False, "enterprise_subteam_id": "", "created_by": "U0ADMIN01",
                "updated_by": "U0ADMIN01", "deleted_by": None, "prefs": {"channels": [], "groups": []},
                "users": list(users), "user_count": len(users), "channel_count": 0,
            }
            return group_id

    # --- queries for tests -----------------------------------------------------------------
    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [c for c in self.calls if c.method == method]

    def responses_to(self, token: str) -> list[dict[str, Any]]:
        with self._lock:
            return [payload for t, payload in self.responses if t == token]

    def channel_messages(self, channel: str) -> list[PostedMessage]:
        with self._lock:
            return [m for (ch, _), m in self.messages.items() if ch == channel]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise AssertionError(f"condition not met within {timeout}s")

    # --- handlers --------------------------------------------------------------------------
    async def _api(self, request: Request) -> JSONResponse:
        method = request.path_params["method"]
        args: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        if raw:
            if "json" in ctype:
                args.update(json.loads(raw))
            else:
                args.update(dict(parse_qsl(raw.decode())))
        for key in ("blocks", "attachments", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() or args.get("token", "")
        with self._lock:
            self.calls.append(SlackCall(method, args))
        if method == "apps.connections.open":
            if token != self.app_token:
                return JSONResponse({"ok": False, "error": "invalid_auth"})
            return JSONResponse({"ok": True, "url": f"ws://127.0.0.1:{self.server.port}/link"})
        if token != self.token:
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"})
        return JSONResponse(handler(args))

    def _m_auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://test.slack.com/", "team": "Test", "user": "smsops",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "BBOT00001", "is_enterprise_install": False}

    def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        ts = f"{int(time.time())}.{next(self._ts):06d}"
        msg = PostedMessage(channel, ts, args.get("text", ""), args.get("blocks") or [])
        with self._lock:
            self.messages[(channel, ts)] = msg
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": msg.text, "ts": ts}}

    def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        key = (args.get("channel", ""), args.get("ts", ""))
        with self._lock:
            msg = self.messages.get(key)
            if msg is None:
                return {"ok": False, "error": "message_not_found"}
            msg.history.append({"text": msg.text, "blocks": msg.blocks})
            msg.text = args.get("text", msg.text)
            msg.blocks = args.get("blocks") or []
        return {"ok": True, "channel": key[0], "ts": key[1]}

    def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": f"{int(time.time())}.{next(self._ts):06d}"}

    def _m_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = args.get("user", "")
        tz = self.user_tz.get(user, "UTC")
        return {"ok": True, "user": {"id": user, "name": user.lower(), "tz": tz, "tz_label": tz}}

    def _m_usergroups_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """Slack's shape: `users` only with include_users; `user_count` only with include_count."""
        include_users = str(args.get("include_users", "")).lower() in ("1", "true")
        include_count = str(args.get("include_count", "")).lower() in ("1", "true")
        with self._lock:
            groups = []
            for group in self.usergroups.values():
                shown = {k: v for k, v in group.items() if k not in ("users", "user_count")}
                if include_users:
                    shown["users"] = list(group["users"])
                if include_count:
                    shown["user_count"] = group["user_count"]
                groups.append(shown)
        return {"ok": True, "usergroups": groups}

    def _m_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            group = self.usergroups.get(str(args.get("usergroup", "")))
            if group is None:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": list(group["users"])}

    def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.views[args.get("user_id", "")] = args.get("view") or {}
        return {"ok": True, "view": {"id": "V1"}}

    # --- Socket Mode ---------------------------------------------------------------------------
    @property
    def socket_connected(self) -> bool:
        with self._lock:
            return bool(self._sockets)

    def send_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """Deliver an event over the app's socket as Slack does; returns the envelope id."""
        envelope_id = f"env-{next(self._ts)}"
        message = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                   "accepts_response_payload": kind in ("slash_commands", "interactive"), "retry_attempt": 0}
        with self._lock:
            loop, queue = self._sockets[-1]
        loop.call_soon_threadsafe(queue.put_nowait, message)
        return envelope_id

    async def _socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        await websocket.send_json({"type": "hello", "num_connections": 1,
                                   "connection_info": {"app_id": "A0SMSOPS1"},
                                   "debug_info": {"host": "fake", "approximate_connection_time": 3600}})
        with self._lock:
            self._sockets.append(entry)

        async def writer() -> None:
            while True:
                await websocket.send_json(await queue.get())

        task = asyncio.create_task(writer())
        try:
            while True:
                ack = json.loads(await websocket.receive_text())
                if "envelope_id" in ack:
                    with self._lock:
                        self.socket_acks[str(ack["envelope_id"])] = ack
        except WebSocketDisconnect:
            pass
        finally:
            task.cancel()
            with self._lock:
                self._sockets.remove(entry)

    async def _response(self, request: Request) -> PlainTextResponse:
        token = request.path_params["token"]
        payload = json.loads(await request.body())
        with self._lock:
            uses = self._response_uses.get(token, 0) + 1
            self._response_uses[token] = uses
            if uses > 5:  # Slack: a response_url may be used up to 5 times
                return PlainTextResponse("used_url", status_code=404)
            self.responses.append((token, payload))
        return PlainTextResponse("ok")

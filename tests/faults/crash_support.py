"""What the crash suite needs: real bot processes to SIGKILL, a signed Slack client, and gates that
hold a provider request so a kill lands exactly between the bot's intent and its outcome."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.sandbox.harness import BOT_TOKEN, SIGNING_SECRET, sign
from bot.sandbox.server import FakeServer, Message, Receive, Scope, Send, free_port
from bot.sandbox.slack import TEAM_ID, FakeSlack

REPO = Path(__file__).resolve().parents[2]


class ForkServer:
    """`python -m tests.faults.forkserver`: one warm interpreter that forks a bot per request."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.forkserver"], cwd=workdir, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"fork server did not start: {first!r}")
        self._lock = threading.Lock()

    def spawn(self, env: dict[str, str], log: Path) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps({"env": env, "log": str(log)}) + "\n")
            self.proc.stdin.flush()
            return int(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too (the fork server's children are reaped by the kernel, but be sure)
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def kill(pid: int) -> None:
    """SIGKILL, then wait until the process is really gone (its sockets closed)."""
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.002)


class RemoteBot:
    """One bot process (HTTP mode), started from the fork server, talked to as Slack would."""

    def __init__(self, server: ForkServer, env: dict[str, str], log: Path, slack: FakeSlack) -> None:
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        self.slack = slack
        self.pid = server.spawn(self.env, log)
        self.log = log
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(timeout=10)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until /healthz answers: by then migrations ran and reconciliation finished (both happen in
        the ASGI lifespan, before uvicorn accepts connections)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive(self.pid):
                raise RuntimeError(f"bot {self.pid} died while starting:\n{self.log.read_text()[-3000:]}")
            try:
                if self.http.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"bot {self.pid} not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        kill(self.pid)
        self.http.close()

    # --- what Slack sends --------------------------------------------------------------------
    def post_signed(self, body: str) -> httpx.Response:
        from tests.faults.secrets_plugin import WATCH

        headers = {"content-type": "application/x-www-form-urlencoded", **sign(body)}
        response = self.http.post(f"{self.url}/slack/events", content=body.encode(), headers=headers)
        WATCH.scan("slack:ack", response.text)
        return response

    def command(self, text: str, user: str, channel: str, token: str) -> httpx.Response:
        form = {
            "token": "legacy-verification-token", "team_id": TEAM_ID, "team_domain": "test",
            "channel_id": channel, "channel_name": "ops", "user_id": user, "user_name": user.lower(),
            "command": "/sms", "text": text, "api_app_id": "A0SMSOPS1", "is_enterprise_install": "false",
            "response_url": self.slack.response_url(token), "trigger_id": f"{secrets.randbelow(10**9)}.1.x",
        }
        return self.post_signed(urlencode(form))

    def click(self, action_id: str, value: str, user: str, channel: str, message_ts: str,
              token: str) -> httpx.Response:
        payload = {
            "type": "block_actions", "team": {"id": TEAM_ID, "domain": "test"},
            "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID}, "api_app_id": "A0SMSOPS1",
            "token": "legacy-verification-token",
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                          "is_ephemeral": False},
            "trigger_id": f"{secrets.randbelow(10**9)}.1.x", "channel": {"id": channel, "name": "ops"},
            "message": {"type": "message", "ts": message_ts, "text": ""},
            "response_url": self.slack.response_url(token),
            "actions": [{"action_id": action_id, "block_id": "b", "value": value, "type": "button",
                         "action_ts": f"{time.time():.6f}"}],
        }
        return self.post_signed(urlencode({"payload": json.dumps(payload)}))


def bot_env(slack: FakeSlack, database_url: str, telnyx: Any, solapi: Any, highlevel: Any,
            **extra: str) -> dict[str, str]:
    """The environment of a bot process wired to the in-process fakes (they keep the provider truth)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "DATABASE_URL": database_url,
        "TELNYX_API_KEY": telnyx.api_key,
        "TELNYX_BASE_URL": telnyx.base_url,
        "TELNYX_FROM": "+18445550001",
        "SOLAPI_API_KEY": solapi.api_key,
        "SOLAPI_API_SECRET": solapi.api_secret,
        "SOLAPI_BASE_URL": solapi.url,
        "SOLAPI_FROM": "029302266",
        "HIGHLEVEL_TOKEN": highlevel.token,
        "HIGHLEVEL_LOCATION_ID": highlevel.location_id,
        "HIGHLEVEL_BASE_URL": highlevel.base_url,
        "RECONCILE_AFTER": "0s",
        "PROVIDER_CONNECT_TIMEOUT": "2",
        "PROVIDER_READ_TIMEOUT": "3",
        "LOG_LEVEL": "INFO",
        "REMINDER_POLL_SECONDS": "60",
    }
    env.update(extra)
    return env


class Gate:
    """ASGI middleware in front of a fake provider: holds one matching request, either before the fake
    acts on it (`after=False`: the provider never sees it) or after the fake acted but before its
    answer leaves (`after=True`: the provider changed, the bot cannot know). `hit` is set when the
    request is held; `release()` lets the held request end (its client is dead by then)."""

    def __init__(self, server: FakeServer) -> None:
        self.inner = server._app.app  # the fake's own app, behind FakeServer's recording/fault layer
        server._app.app = self
        self._lock = threading.Lock()
        self._armed: tuple[str, Callable[[str], bool], bool] | None = None
        self.hit = threading.Event()
        self._released = threading.Event()

    def arm(self, method: str, path_matches: Callable[[str], bool], *, after: bool) -> None:
        with self._lock:
            self._armed = (method.upper(), path_matches, after)
            self.hit.clear()
            self._released.clear()

    def release(self) -> None:
        with self._lock:
            self._armed = None
        self._released.set()

    async def _hold(self) -> None:
        self.hit.set()
        while not self._released.is_set():
            await asyncio.sleep(0.005)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        armed = None
        if scope["type"] == "http":
            with self._lock:
                if self._armed and self._armed[0] == scope["method"] and self._armed[1](scope["path"]):
                    armed, self._armed = self._armed, None  # one request only
        if armed is None:
            await self.inner(scope, receive, send)
            return
        if not armed[2]:
            await self._hold()  # the provider never acts on it; its client is gone by now
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        held: list[Message] = []

        async def keep(message: Message) -> None:
            held.append(message)

        await self.inner(scope, receive, keep)  # the provider acts …
        await self._hold()  # … and its answer leaves only once the bot is dead
        for message in held:
            await send(message)


def new_token() -> str:
    return uuid.uuid4().hex

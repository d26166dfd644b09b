"""`python -m bot console`: the `/sms` commands in a local shell, no Slack (and, in the sandbox, no
provider accounts) needed.

The console runs the real bot, over real HTTP, exactly as a Slack workspace would talk to it: every
line is sent as a signed slash command to the bot's `/slack/events`, every button press as a signed
`block_actions` payload, and the bot answers through `response_url` and the Web API of a local
Slack (bot.sandbox.slack, which the test suite uses too). What Slack would show, the console
prints: ephemeral answers, channel messages and their edits (reminders arrive as they happen),
buttons as `[n] Label`.

`--sandbox` (the default when no provider credentials are set) points the bot at the simulated
Solapi, HighLevel, Telnyx and Twilio the tests use (bot/sandbox): they keep the providers' documented rules,
statuses and error messages. Its database is a SQLite file of its own (`./smsops-sandbox.db`,
recreated on every start because the simulated providers start empty too), never DATABASE_URL.
Without `--sandbox` and with provider credentials set, the bot uses the real providers and
DATABASE_URL (or `./smsops-console.db` when SLACK_BOT_TOKEN is set: see `database_for`); only Slack
is local. The bot's JSON log goes to `./smsops-console.log`, not the terminal.

The simulators are part of the package (bot.sandbox), so an installed smsops (a wheel, the Docker
image) runs the console from any directory.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import queue
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from bot.cli.console_render import Button, Names, Style, confirm_question, indent, render_blocks
from bot.domain.durations import parse_duration
from bot.infra import logs
from bot.infra.settings import Settings
from bot.providers.registry import display

log = logging.getLogger("bot.cli.console")

SANDBOX_LEADS = "1m,20s"  # reminders a newcomer sees within a minute of `schedule … in 90s`
SANDBOX_DB = "smsops-sandbox.db"
CONSOLE_DB = "smsops-console.db"
LOG_FILE = "smsops-console.log"
CHANNEL_ID = "C0SANDBOX1"
CHANNEL_NAME = "sandbox"
REPLY_TIMEOUT = 60.0  # providers may take a read timeout or two, with retries
MAX_WAIT = 600

CONSOLE_HELP = """\
Type an /sms command with or without the `/sms` (`schedule …`, `/sms list`), or:
  <n>            press button [n] (a button that asks for confirmation asks y/n first)
  home           open the App Home tab (your upcoming sends, approvals, recent activity)
  as <name>      act as someone else from now on (e.g. `as bob`, a second approver)
  wait <secs>    wait and watch (reminders and other channel messages appear as they happen)
  help           this, then the bot's own /sms help
  quit           leave (Ctrl-D works too)
"""


def console_main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot console",
                                     description="Try the /sms commands in a local shell, no Slack needed.")
    parser.add_argument("--sandbox", action="store_true",
                        help="use simulated providers (the default when no provider credentials are set)")
    parser.add_argument("--db", default=None, metavar="FILE",
                        help=f"the console's SQLite file (sandbox: ./{SANDBOX_DB}, recreated on every start; "
                             f"real providers: DATABASE_URL, or ./{CONSOLE_DB} when SLACK_BOT_TOKEN is set)")
    parser.add_argument("--log", default=LOG_FILE, metavar="FILE",
                        help=f"where the bot's JSON log lines go (default ./{LOG_FILE})")
    parser.add_argument("--as", dest="user", default="you", metavar="NAME", help="who you are (default: you)")
    options = parser.parse_args(argv)

    file_handler = log_to_file(Path(options.log), settings)  # before the imports below start logging
    support = load_support()
    sandbox = options.sandbox or not has_provider_credentials(settings)
    console = Console(support, settings, sandbox=sandbox, database_url=database_for(settings, sandbox, options.db),
                      log_file=Path(options.log), user=options.user, log_handler=file_handler)
    try:
        console.start()
    except ConsoleError as error:
        console.stop()
        print(f"smsops console: {error}.", file=sys.stderr)
        return 2
    except Exception as error:
        log.exception("the console could not start")
        console.stop()
        print(f"smsops console: could not start: {error} (details in {options.log})", file=sys.stderr)
        return 1
    try:
        return console.loop()
    finally:
        console.stop()


def log_to_file(path: Path, settings: Settings) -> logging.Handler:
    """The bot's JSON log lines go to a file: the terminal is the console's."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logs.JsonFormatter(settings.secrets()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    logging.captureWarnings(True)
    return handler


def database_for(settings: Settings, sandbox: bool, db_file: str | None) -> str:
    """The console's database. Never one a Slack-connected bot uses: its reminders would race the
    console's, and its ledger would fill with the local Slack's channels and people.

    - sandbox: its own SQLite file (recreated on start: the simulated providers start empty too);
    - real providers, no SLACK_BOT_TOKEN (Slack not set up yet): DATABASE_URL, the bot's own ledger;
    - real providers and SLACK_BOT_TOKEN set (a Slack-connected bot owns DATABASE_URL): a local file."""
    if db_file is not None:
        return f"sqlite:///{Path(db_file).resolve()}"
    if sandbox:
        return f"sqlite:///{Path(SANDBOX_DB).resolve()}"
    if settings.slack_bot_token is None:
        return settings.database_url
    return f"sqlite:///{Path(CONSOLE_DB).resolve()}"


def has_provider_credentials(settings: Settings) -> bool:
    return bool((settings.solapi_api_key and settings.solapi_api_secret) or settings.highlevel_token
                or settings.telnyx_api_key
                or (settings.twilio_account_sid and (settings.twilio_auth_token or settings.twilio_api_secret)))


class ConsoleError(Exception):
    """Why the console can't start, in words for the person who started it."""


@dataclass
class Support:
    """The sandbox modules the console is built on (bot.sandbox: the local Slack, the simulated
    providers and the HTTP harness)."""

    harness: ModuleType
    slack: ModuleType
    telnyx: ModuleType
    twilio: ModuleType
    solapi: ModuleType
    highlevel: ModuleType


def load_support() -> Support:
    from bot.sandbox import harness, highlevel, slack, solapi, telnyx, twilio

    return Support(harness=harness, slack=slack, telnyx=telnyx, twilio=twilio, solapi=solapi, highlevel=highlevel)


# --- what the local Slack saw ---------------------------------------------------------------------
@dataclass
class SlackEvent:
    kind: str  # posted | edited | response | ephemeral | home
    seq: int = 0
    channel: str = ""
    ts: str = ""
    token: str = ""
    user: str = ""
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.payload.get("blocks") or [])


def console_slack_class(base: Any) -> Any:
    """FakeSlack that also reports, in order, every message, edit, response and view it receives."""

    class ConsoleSlack(base):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.events: queue.Queue[SlackEvent] = queue.Queue()

        def _m_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
            answer: dict[str, Any] = super()._m_chat_postMessage(args)
            if answer.get("ok"):
                self.events.put(SlackEvent("posted", channel=str(answer["channel"]), ts=str(answer["ts"]),
                                           payload=dict(args)))
            return answer

        def _m_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
            answer: dict[str, Any] = super()._m_chat_update(args)
            if answer.get("ok"):
                self.events.put(SlackEvent("edited", channel=str(answer["channel"]), ts=str(answer["ts"]),
                                           payload=dict(args)))
            return answer

        def _m_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
            answer: dict[str, Any] = super()._m_chat_postEphemeral(args)
            if answer.get("ok"):
                self.events.put(SlackEvent("ephemeral", channel=str(args.get("channel", "")),
                                           user=str(args.get("user", "")), payload=dict(args)))
            return answer

        def _m_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
            answer: dict[str, Any] = super()._m_views_publish(args)
            if answer.get("ok"):
                self.events.put(SlackEvent("home", user=str(args.get("user_id", "")),
                                           payload=dict(args.get("view") or {})))
            return answer

        async def _response(self, request: Any) -> Any:
            payload = json.loads(await request.body())  # Starlette caches the body for super()
            answer = await super()._response(request)
            if answer.status_code == 200:
                self.events.put(SlackEvent("response", token=str(request.path_params["token"]), payload=payload))
            return answer

    return ConsoleSlack


def user_id(name: str) -> str:
    """A Slack-shaped user id for a console name: `bob` → `UBOB00000`."""
    letters = re.sub(r"[^A-Z0-9]", "", name.upper()) or "X"
    return "U" + letters[:10].ljust(8, "0")


@dataclass
class Pressable:
    number: int
    button: Button
    where: str  # message | ephemeral | home
    channel: str
    ts: str
    live: bool = True


# --- the console ----------------------------------------------------------------------------------
class Console:
    def __init__(self, support: Support, settings: Settings, *, sandbox: bool, database_url: str, log_file: Path,
                 user: str = "you", stdin: TextIO | None = None, stdout: TextIO | None = None,
                 log_handler: logging.Handler | None = None) -> None:
        self.support = support
        self.settings = settings
        self.sandbox = sandbox
        self.database_url = database_url
        self.log_file = log_file
        self.stdin = stdin or sys.stdin
        self.out = stdout or sys.stdout
        self.tty = self.stdin.isatty() and self.out.isatty()
        color = self.out.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.style = Style.ansi() if color else Style.plain()
        self.names = Names(channels={CHANNEL_ID: CHANNEL_NAME})
        self.user = ""
        self.become(user)
        self.slack: Any = None
        self.fakes: list[Any] = []
        self.harness: Any = None
        self.seeds: dict[str, str] = {}
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._seen: list[SlackEvent] = []
        self._seq = itertools.count(1)
        self._numbers: dict[tuple[str, ...], int] = {}
        self._buttons: dict[int, Pressable] = {}
        self._message_buttons: dict[tuple[str, ...], set[int]] = {}
        self._next_button = itertools.count(1)
        self._at_prompt = False
        self._stopping = threading.Event()
        self._printer: threading.Thread | None = None
        self._readline: Any = None
        self._prompt = ""
        self._file_handler = log_handler or logging.NullHandler()

    # --- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        slack_cls = console_slack_class(self.support.slack.FakeSlack)
        self.slack = slack_cls().start()
        self.fakes.append(self.slack)
        if self.sandbox:
            self._fresh_sandbox_database()
            values = self._start_simulators()
        else:
            values = self._real_provider_values()
        self.harness = self.support.harness.BotHarness(self.slack, self.database_url, **values)
        self._quiet_servers()  # each uvicorn config just re-installed its stderr handlers
        self.harness.start()
        self._printer = threading.Thread(target=self._print_events, name="console-printer", daemon=True)
        self._printer.start()
        self._banner()

    def stop(self) -> None:
        self._stopping.set()
        if self.harness is not None:
            with contextlib.suppress(Exception):
                self.harness.stop()
        for fake in reversed(self.fakes):
            with contextlib.suppress(Exception):
                fake.stop()
        self.fakes.clear()

    def _fresh_sandbox_database(self) -> None:
        """The sandbox starts from an empty ledger, as its simulated providers start empty. Its own file
        is recreated; any other file given with --db must not exist yet (it may be someone's ledger)."""
        path = Path(self.database_url.removeprefix("sqlite:///"))
        if path.exists() and path.resolve() != Path(SANDBOX_DB).resolve():
            raise ConsoleError(f"{path} already exists: the sandbox starts from an empty database, and "
                               "won't overwrite a file it did not make. Pick a new --db file")
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def _quiet_servers(self) -> None:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
            logger = logging.getLogger(name)
            logger.handlers[:] = [self._file_handler]
            logger.propagate = False

    def _start_simulators(self) -> dict[str, Any]:
        telnyx = self.support.telnyx.FakeTelnyx().start()
        self.fakes.append(telnyx)
        solapi = self.support.solapi.FakeSolapi().start()
        self.fakes.append(solapi)
        highlevel = self.support.highlevel.FakeHighLevel().start()
        self.fakes.append(highlevel)
        twilio = self.support.twilio.FakeTwilio().start()
        self.fakes.append(twilio)
        now = datetime.now(UTC)
        self.seeds = {
            "solapi_pending": solapi.add_group(
                status="PENDING", recipients=("01012345678", "01098765432", "01055501234"),
                text="[smsops sandbox] 내일 회의가 오전 11시로 변경되었습니다."),
            "telnyx_scheduled": telnyx.add_message(send_at=now + timedelta(minutes=30), to="+15551234567",
                                                   text="Doors open at 10, see you there"),
            "twilio_scheduled": twilio.add_message(send_at=now + timedelta(minutes=45), to="+15558675310",
                                                   body="Your order ships tomorrow"),
            "highlevel_scheduled": highlevel.add_message(scheduled_at=now + timedelta(hours=2),
                                                         text="Your appointment is tomorrow at 9"),
        }
        return {
            "telnyx_api_key": telnyx.api_key, "telnyx_base_url": telnyx.base_url, "telnyx_from": "+18445550001",
            "telnyx_messaging_profile_id": None, "telnyx_public_key": None,
            "solapi_api_key": solapi.api_key, "solapi_api_secret": solapi.api_secret,
            "solapi_base_url": solapi.url, "solapi_from": "029302266",
            "highlevel_token": highlevel.token, "highlevel_location_id": highlevel.location_id,
            "highlevel_base_url": highlevel.base_url,
            "twilio_account_sid": twilio.account_sid, "twilio_auth_token": twilio.auth_token,
            "twilio_api_key": None, "twilio_api_secret": None,
            "twilio_messaging_service_sid": twilio.messaging_service_sid, "twilio_base_url": twilio.base_url,
            "twilio_status_callback_url": None,
            # The sandbox's own rules: short reminder leads, and no SMS_ADMINS/SMS_CHANNEL from the
            # environment (they name real Slack ids that mean nothing here).
            "reminder_leads": os.environ.get("REMINDER_LEADS") or SANDBOX_LEADS,
            "sms_admins": "", "sms_auditors": "", "sms_channel": None,
        }

    def _real_provider_values(self) -> dict[str, Any]:
        local = {"slack_bot_token", "slack_signing_secret", "slack_app_token", "slack_api_url", "database_url",
                 "host", "port"}
        return {k: v for k, v in self.settings.model_dump().items() if k not in local}

    def _banner(self) -> None:
        providers = ", ".join(display(p) for p in sorted(self.harness.services.providers)) or "none"
        leads = " and ".join(_short(lead) for lead in self.harness.settings.reminder_leads)
        database = _shown_url(self.database_url)
        b = self.style.bold
        lines = [b("smsops console") + f": the real bot over HTTP, with a local Slack. You are "
                 f"@{self.names.users[self.user]} in #{CHANNEL_NAME}."]
        if self.sandbox:
            telnyx = self.seeds["telnyx_scheduled"]
            lines += [
                f"Sandbox: simulated {providers} (no accounts; nothing is really sent). Reminders {leads} "
                f"before each send.",
                f"Database {database} (fresh each start), log {self.log_file}.",
                "",
                "Try:",
                "  schedule solapi +821012345678 in 90s 안녕하세요",
                f"      a notice with a Cancel button; reminders {leads} before it goes out",
                f"  send {self.seeds['solapi_pending']}",
                "      a PENDING Solapi group someone prepared: press Approve to send it",
                f"  track telnyx {telnyx}   then   cancel {telnyx}",
                "      a Telnyx SMS due in 30 minutes",
                f"  cancel {self.seeds['twilio_scheduled']}",
                "      a Twilio SMS due in 45 minutes (Twilio schedules 15 minutes to 35 days ahead)",
                "  list · status <id> · audit · home · help · quit",
            ]
        else:
            lines += [
                self.style.danger(f"REAL providers: {providers}. What you schedule or send here reaches real "
                                  "phones.") + " Only Slack is local.",
                f"Reminders {leads} before each send. Database {database}, log {self.log_file}.",
                "Type help for the commands, quit to leave.",
            ]
        self._emit([*lines, ""])

    # --- the loop ---------------------------------------------------------------------------------
    def loop(self) -> int:
        if self.tty:
            with contextlib.suppress(ImportError):
                import readline

                self._readline = readline
        while True:
            try:
                line = self._read(f"{self.names.users[self.user]}> ")
            except EOFError:
                self._emit(["", "bye"] if self.tty else ["bye"])
                return 0
            except KeyboardInterrupt:
                self._emit(["^C"])
                continue
            if line is None:
                continue
            try:
                if not self.handle(line):
                    self._emit(["bye"])
                    return 0
            except KeyboardInterrupt:
                self._emit(["(stopped waiting; anything still coming will appear when it comes)"])

    def _read(self, prompt: str) -> str | None:
        with self._lock:
            self._prompt = prompt
            self._at_prompt = True
        try:
            if self.tty:
                line = input(prompt)
            else:
                raw = self.stdin.readline()
                if raw == "":
                    raise EOFError
                line = raw.rstrip("\n")
                self._emit([prompt + line])
        finally:
            with self._lock:
                self._at_prompt = False
        return line.strip() or None

    def handle(self, line: str) -> bool:
        """One line of input; False to leave."""
        word, _, rest = line.partition(" ")
        verb = word.lower()
        if verb in ("quit", "exit", "q", ":q"):
            return False
        if re.fullmatch(r"\[?\d{1,4}\]?", line):
            self.press(int(line.strip("[]")))
        elif verb == "help" and not rest.strip():
            self._emit(CONSOLE_HELP.rstrip("\n").split("\n"))
            self.command("help")
        elif verb == "home":
            self.open_home()
        elif verb == "as" and rest.strip():
            self.become(rest.strip())
            self._emit([f"(you are now @{self.names.users[self.user]})"])
        elif verb == "wait":
            self.wait(rest.strip() or "30")
        else:
            text = line.removeprefix("/sms").strip() if verb == "/sms" else line
            if verb.startswith("/") and verb != "/sms":
                self._emit(["Only /sms is installed here; type `/sms …` or just the command."])
            else:
                self.command(text)
        return True

    def become(self, name: str) -> None:
        clean = re.sub(r"[^\w.-]", "", name.lstrip("@"))[:20] or "you"
        self.user = user_id(clean)
        self.names.users[self.user] = clean

    def wait(self, amount: str) -> None:
        try:
            seconds = float(amount) if re.fullmatch(r"\d+(\.\d+)?", amount) else \
                parse_duration(amount).total_seconds()
        except ValueError as error:
            self._emit([str(error)])
            return
        deadline = time.monotonic() + min(seconds, MAX_WAIT)
        while time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    # --- talking to the bot -----------------------------------------------------------------------
    def command(self, text: str) -> None:
        text = self._mentions(text)
        with self._lock:  # the ack is shown before anything the work after it produces
            mark = self._mark()
            response, token = self.harness.command(text, user=self.user, channel=CHANNEL_ID,
                                                   user_name=self.names.users[self.user])
            if response.status_code != 200:
                self._emit([f"(the bot answered HTTP {response.status_code}: {response.text[:200]})"])
                return
            body = _json(response)
            if not body:
                waiting = True
            else:
                self._show_ephemeral(body, token)
                waiting = str(body.get("text", "")).startswith("⏳")
        if waiting:
            self._wait_for(lambda e: e.kind == "response" and e.token == token and not _progress(e.text), mark)

    def press(self, number: int) -> None:
        pressable = self._buttons.get(number)
        if pressable is None:
            self._emit([f"There is no button [{number}]."])
            return
        if not pressable.live:
            self._emit([f"Button [{number}] is gone: its message was updated since."])
            return
        button = pressable.button
        if button.confirm:
            question, yes, no = confirm_question(button.confirm, self.names)
            try:
                answer = self._read(f"{question} [y = {yes}, n = {no}] ")
            except EOFError:
                answer = None
            if (answer or "").lower() not in ("y", "yes"):
                self._emit([f"({no}: nothing was pressed)"])
                return
        if pressable.where == "home":
            self._click_in_home(pressable)
            return
        with self._lock:
            mark = self._mark()
            response, token = self.harness.click(button.action_id, button.value, user=self.user,
                                                 channel=pressable.channel, message_ts=pressable.ts,
                                                 is_ephemeral=pressable.where == "ephemeral")
        if response.status_code != 200:
            self._emit([f"(the bot answered HTTP {response.status_code}: {response.text[:200]})"])
            return
        self._wait_for(lambda e: e.kind == "response" and e.token == token and not _progress(e.text), mark)

    def open_home(self) -> None:
        mark = self._mark()
        event = {"type": "app_home_opened", "user": self.user, "channel": "D0HOME0001", "tab": "home",
                 "event_ts": f"{time.time():.6f}"}
        response = self._post_event(event)
        if response.status_code != 200:
            self._emit([f"(the bot answered HTTP {response.status_code})"])
            return
        self._wait_for(lambda e: e.kind == "home" and e.user == self.user, mark, timeout=15)

    def _post_event(self, event: dict[str, Any]) -> Any:
        body = json.dumps({
            "token": "legacy-verification-token", "team_id": self.support.slack.TEAM_ID, "api_app_id": "A0SMSOPS1",
            "event": event, "type": "event_callback", "event_id": f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()),
        })
        return self.harness.post_signed(body, content_type="application/json")

    def _click_in_home(self, pressable: Pressable) -> None:
        """A press in the App Home tab: Slack sends it with the view as container and no response_url."""
        button = pressable.button
        payload = {
            "type": "block_actions", "team": {"id": self.support.slack.TEAM_ID, "domain": "sandbox"},
            "user": {"id": self.user, "username": self.names.users[self.user],
                     "team_id": self.support.slack.TEAM_ID},
            "api_app_id": "A0SMSOPS1", "token": "legacy-verification-token",
            "container": {"type": "view", "view_id": "V1"}, "trigger_id": f"{uuid.uuid4().int % 10**9}.1.x",
            "view": {"id": "V1", "type": "home"},
            "actions": [{"action_id": button.action_id, "block_id": "b", "value": button.value, "type": "button",
                         "action_ts": f"{time.time():.6f}"}],
        }
        from urllib.parse import urlencode

        mark = self._mark()
        response = self.harness.post_signed(urlencode({"payload": json.dumps(payload)}))
        if response.status_code != 200:
            self._emit([f"(the bot answered HTTP {response.status_code})"])
            return
        # There is no response_url from a Home tab: whatever the bot does shows in the channel or the tab.
        self._wait_for(lambda e: e.kind in ("posted", "edited", "home", "ephemeral"), mark, timeout=10,
                       quiet=True)

    def _mentions(self, text: str) -> str:
        """What Slack's client sends for typed text: `&`, `<`, `>` escaped (`&amp;`, `&lt;`, `&gt;`), then
        `@bob` → `<@UBOB00000>` for people the console knows (the manifest's should_escape)."""
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        by_name = {name.lower(): uid for uid, name in self.names.users.items()}

        def swap(match: re.Match[str]) -> str:
            uid = by_name.get(match.group(1).lower())
            return f"<@{uid}>" if uid else match.group(0)

        return re.sub(r"(?<![<\w])@([\w.-]+)", swap, text)

    # --- what arrives ------------------------------------------------------------------------------
    def _mark(self) -> int:
        with self._lock:
            return len(self._seen)

    def _wait_for(self, predicate: Callable[[SlackEvent], bool], mark: int, timeout: float = REPLY_TIMEOUT,
                  quiet: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if any(predicate(e) for e in self._seen[mark:]):
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        if not quiet:
            self._emit(["(no answer yet; it will show up here when it comes)"])
        return False

    def _print_events(self) -> None:
        while not self._stopping.is_set():
            try:
                event = self.slack.events.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                with self._cond:
                    event.seq = next(self._seq)
                    self._show(event)
                    self._seen.append(event)
                    self._cond.notify_all()
            except Exception:  # the printer must outlive one odd message
                log.exception("could not show a Slack message")

    def _show(self, event: SlackEvent) -> None:
        match event.kind:
            case "response":
                self._show_ephemeral(event.payload, event.token)
            case "ephemeral":
                if event.user == self.user:
                    self._show_ephemeral(event.payload, f"e{event.seq}")
            case "posted" | "edited":
                self._show_message(event)
            case "home":
                self._show_home(event)

    def _show_ephemeral(self, payload: dict[str, Any], token: str) -> None:
        number, _ = self._numberer("ephemeral", CHANNEL_ID, ("ephemeral", token))
        lines = render_blocks(payload.get("blocks"), str(payload.get("text", "")), self.names, number, self.style)
        tag = "[only you, replacing] " if payload.get("replace_original") else "[only you] "
        self._emit(indent(tag, lines))

    def _show_message(self, event: SlackEvent) -> None:
        key = ("message", event.channel, event.ts)
        number, used = self._numberer("message", event.channel, key, event.ts)
        lines = render_blocks(event.blocks, event.text, self.names, number, self.style)
        self._retire(key, used)
        where = self.names.channel(event.channel)
        tag = f"[{where}, edited] " if event.kind == "edited" else f"[{where}] "
        self._emit(["", *indent(tag, lines)])

    def _show_home(self, event: SlackEvent) -> None:
        if event.user != self.user:
            return
        key = ("home", event.user)
        number, used = self._numberer("home", "", key)
        lines = render_blocks(list(event.payload.get("blocks") or []), "", self.names, number, self.style)
        self._retire(key, used)
        self._emit(["", *indent("[App Home] ", lines)])

    def _retire(self, key: tuple[str, ...], used: set[int]) -> None:
        """A message was (re)drawn: its buttons that are no longer there can't be pressed any more."""
        for n in self._message_buttons.get(key, set()) - used:
            self._buttons[n].live = False
        self._message_buttons[key] = used

    def _numberer(self, where: str, channel: str, key: tuple[str, ...],
                  ts: str = "") -> tuple[Callable[[Button], int], set[int]]:
        """Numbers for a message's buttons: the same button keeps its number when the message is redrawn."""
        used: set[int] = set()

        def number(button: Button) -> int:
            button_key = (*key, button.action_id, button.value)
            n = self._numbers.get(button_key)
            if n is None:
                n = next(self._next_button)
                self._numbers[button_key] = n
            self._buttons[n] = Pressable(n, button, where, channel or CHANNEL_ID, ts or f"{time.time():.6f}")
            used.add(n)
            return n

        return number, used

    def _emit(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n"
        with self._lock:
            if self._at_prompt and self.tty:
                buffer = self._readline.get_line_buffer() if self._readline is not None else ""
                self.out.write("\r\033[K" + text + self._prompt + buffer)
            else:
                self.out.write(text)
            self.out.flush()


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _progress(text: str) -> bool:
    return text.startswith("⏳")


def _shown_url(url: str) -> str:
    """A database URL for the banner: a SQLite file as a path, any password hidden."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        with contextlib.suppress(ValueError):
            return "./" + str(path.relative_to(Path.cwd()))
        return str(path)
    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


def _short(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

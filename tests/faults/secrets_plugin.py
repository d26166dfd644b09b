"""A session-wide check that no secret (Slack tokens, signing secret, provider keys) ever appears in
anything the bot writes: its log records, its answers to Slack (acks, response_url posts, Web API
calls as the fake Slack received them), its database (ledger, intents, sends, approvals), and the
stderr of the bot processes the crash suite runs.

Registered from tests/conftest.py (`pytest_plugins`), so it watches the whole suite, not only
tests/faults. A log record's message and fields are checked raw, before the bot's redacting formatter:
the bot must never compose a log line with a secret in it. An exception's text (which may come from a
library or a driver) is checked as the bot's redactor writes it. A test marked `secrets_on_purpose`
has its whole records checked as the bot's formatter writes them.
A leak fails the session with a report naming the test and where the secret was seen.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from bot.sandbox.harness import BOT_TOKEN, SIGNING_SECRET
from bot.sandbox.highlevel import DEFAULT_TOKEN as HIGHLEVEL_TOKEN
from bot.sandbox.telnyx import DEFAULT_KEY as TELNYX_KEY

MIN_LENGTH = 6  # shorter "secrets" would match ordinary words


@dataclass
class Leak:
    test: str
    where: str
    secret: str
    snippet: str


class SecretWatch:
    def __init__(self) -> None:
        self.secrets: set[str] = {BOT_TOKEN, SIGNING_SECRET, TELNYX_KEY, HIGHLEVEL_TOKEN, "NCSFAKEAPIKEY0001",
                                  "FAKESECRETFAKESECRETFAKESECRET01"}
        self.leaks: list[Leak] = []
        self.scanned: dict[str, int] = {}
        self.test = "(outside a test)"
        self.on_purpose = False
        self._lock = threading.Lock()

    def add_secrets(self, values: list[str]) -> None:
        with self._lock:
            self.secrets.update(v for v in values if len(v) >= MIN_LENGTH)

    def scan(self, where: str, text: str) -> None:
        kind = where.split(":", 1)[0]
        with self._lock:
            self.scanned[kind] = self.scanned.get(kind, 0) + 1
            secrets = list(self.secrets)
        for secret in secrets:
            at = text.find(secret)
            if at >= 0:
                snippet = text[max(0, at - 60): at + len(secret) + 20].replace(secret, "<SECRET>")
                with self._lock:
                    self.leaks.append(Leak(self.test, where, secret[:4] + "…", snippet))


WATCH = SecretWatch()


class _Records(logging.Handler):
    """Every log record, as text: message, extra fields and traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        from bot.infra.logs import JsonFormatter

        self._formatter = JsonFormatter

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if WATCH.on_purpose:
                text = self._formatter(sorted(WATCH.secrets)).format(record)  # what the bot writes
            else:
                text = json.dumps({k: v for k, v in record.__dict__.items() if k not in ("exc_info", "args")},
                                  default=str, ensure_ascii=False)
                text += record.getMessage()
                if record.exc_info:  # an exception's text may come from anywhere (a driver, a library):
                    # the bot's redactor is the defence there, so it is checked as the bot writes it
                    trace = logging.Formatter().formatException(record.exc_info)
                    text += self._formatter(sorted(WATCH.secrets)).redact(trace)
            WATCH.scan(f"log:{record.name}", text)
        except Exception:  # never break logging
            pass


def scan_bot_database(engine: Any, where: str) -> None:
    from sqlalchemy import inspect, text

    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            for table in ("ledger_entries", "intents", "tracked_sends", "approvals"):
                if table in tables:
                    for row in conn.execute(text(f"SELECT * FROM {table}")):
                        WATCH.scan(f"database:{where}:{table}", " | ".join(str(v) for v in row))
    except Exception as error:  # a database already gone is not a leak
        logging.getLogger(__name__).debug("could not scan %s: %s", where, error)


def scan_fake_slack(fake: Any) -> None:
    for call in list(fake.calls):
        args = {k: v for k, v in call.args.items() if k != "token"}  # a token sent *to Slack* is no leak
        WATCH.scan(f"slack:{call.method}", json.dumps(args, ensure_ascii=False, default=str))
    for _token, payload in list(fake.responses):
        WATCH.scan("slack:response_url", json.dumps(payload, ensure_ascii=False, default=str))


def _install() -> None:
    from bot.sandbox.harness import BotHarness
    from bot.sandbox.slack import FakeSlack

    original_stop = FakeSlack.stop

    def stop(self: FakeSlack) -> None:
        scan_fake_slack(self)
        original_stop(self)

    FakeSlack.stop = stop  # type: ignore[method-assign]

    original_init = BotHarness.__init__
    original_harness_stop = BotHarness.stop
    original_post = BotHarness.post_signed

    def init(self: BotHarness, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        WATCH.add_secrets(self.settings.secrets())

    def harness_stop(self: BotHarness) -> None:
        scan_bot_database(self.runtime.engine, "bot")
        original_harness_stop(self)

    def post_signed(self: BotHarness, *args: Any, **kwargs: Any) -> Any:
        response = original_post(self, *args, **kwargs)
        WATCH.scan("slack:ack", response.text)
        return response

    BotHarness.__init__ = init  # type: ignore[method-assign]
    BotHarness.stop = harness_stop  # type: ignore[method-assign]
    BotHarness.post_signed = post_signed  # type: ignore[method-assign]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "secrets_on_purpose: the test puts a secret into an error on purpose; "
                                       "its log records are checked as the bot's redacting formatter writes them")
    root = logging.getLogger()
    root.addHandler(_Records())
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)  # what the bot logs in production (LOG_LEVEL=INFO)
    _install()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    WATCH.test = item.nodeid
    WATCH.on_purpose = item.get_closest_marker("secrets_on_purpose") is not None
    yield
    WATCH.test = "(outside a test)"
    WATCH.on_purpose = False


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if WATCH.leaks:
        terminalreporter.section("SECRETS LEAKED", sep="!", red=True)
        for leak in WATCH.leaks[:50]:
            terminalreporter.line(f"{leak.test}: {leak.secret} in {leak.where}: …{leak.snippet}…")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if WATCH.leaks and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

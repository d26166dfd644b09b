"""Fixtures shared by every test: real databases, the fake Slack, the fake providers, the bot."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.sandbox.slack import FakeSlack
from tests.support import pg

# Watches the whole session for secrets in logs, Slack answers and the ledger (tests/faults/secrets_plugin.py).
pytest_plugins = ["tests.faults.secrets_plugin"]



def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get("SMSOPS_TEST_PG_USED"):
        terminalreporter.write_line(f"PostgreSQL used by the tests: {pg.admin_url()} "
                                    f"(collation: {pg.collation_summary()})")


def create_pg_database() -> tuple[str, str]:
    """A fresh PostgreSQL database for one test; returns (SQLAlchemy URL, name)."""
    name = f"smsops_t_{uuid.uuid4().hex[:12]}"
    admin = pg.admin_url()
    os.environ["SMSOPS_TEST_PG_USED"] = "1"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" {pg.create_options()}')
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}", name


def drop_pg_database(name: str) -> None:
    with psycopg.connect(pg.admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'smsops.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    url, name = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'smsops.db'}"
        return
    url, name = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    try:
        yield fake
    finally:
        fake.stop()


# --- the fake providers and the bot wired to them -------------------------------------------------
from bot.sandbox.harness import BotHarness  # noqa: E402
from bot.sandbox.highlevel import FakeHighLevel  # noqa: E402
from bot.sandbox.solapi import FakeSolapi  # noqa: E402
from bot.sandbox.telnyx import FakeTelnyx  # noqa: E402
from bot.sandbox.twilio import FakeTwilio  # noqa: E402


@pytest.fixture
def telnyx() -> Iterator[FakeTelnyx]:
    fake = FakeTelnyx().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def solapi() -> Iterator[FakeSolapi]:
    fake = FakeSolapi().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def highlevel() -> Iterator[FakeHighLevel]:
    fake = FakeHighLevel().start()
    try:
        yield fake
    finally:
        fake.stop()


def twilio_settings(twilio: FakeTwilio) -> dict[str, object]:
    return {
        "twilio_account_sid": twilio.account_sid,
        "twilio_auth_token": twilio.auth_token,
        "twilio_messaging_service_sid": twilio.messaging_service_sid,
        "twilio_base_url": twilio.base_url,
    }


def provider_settings(telnyx: FakeTelnyx, solapi: FakeSolapi, highlevel: FakeHighLevel,
                      twilio: FakeTwilio | None = None) -> dict[str, object]:
    return {
        **(twilio_settings(twilio) if twilio is not None else {}),
        "telnyx_api_key": telnyx.api_key,
        "telnyx_base_url": telnyx.base_url,
        "telnyx_from": "+18445550001",
        "solapi_api_key": solapi.api_key,
        "solapi_api_secret": solapi.api_secret,
        "solapi_base_url": solapi.url,
        "solapi_from": "029302266",
        "highlevel_token": highlevel.token,
        "highlevel_location_id": highlevel.location_id,
        "highlevel_base_url": highlevel.base_url,
    }


@pytest.fixture
def make_bot(slack: FakeSlack, telnyx: FakeTelnyx, solapi: FakeSolapi, highlevel: FakeHighLevel,
             twilio: FakeTwilio, sqlite_url: str) -> Iterator[object]:
    """A factory: make_bot(**settings) starts a bot wired to every fake (SQLite unless database_url=…)."""
    started: list[BotHarness] = []

    def make(**settings: object) -> BotHarness:
        values = {"database_url": sqlite_url, **provider_settings(telnyx, solapi, highlevel, twilio), **settings}
        url = str(values.pop("database_url"))
        harness = BotHarness(slack, url, **values).start()
        started.append(harness)
        return harness

    yield make
    for harness in started:
        harness.stop()


@pytest.fixture
def bot(make_bot: object) -> BotHarness:
    return make_bot()  # type: ignore[operator,no-any-return]

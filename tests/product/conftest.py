"""One bot per test module (starting and stopping a bot costs about two seconds): the fakes, and the
real bot over HTTP wired to them. Tests here read the ledger and Slack by difference, not from zero."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.sandbox.harness import BotHarness
from bot.sandbox.highlevel import FakeHighLevel
from bot.sandbox.slack import FakeSlack
from bot.sandbox.solapi import FakeSolapi
from bot.sandbox.telnyx import FakeTelnyx
from tests.conftest import provider_settings


@dataclass
class World:
    bot: BotHarness
    slack: FakeSlack
    telnyx: FakeTelnyx
    solapi: FakeSolapi
    highlevel: FakeHighLevel


@contextmanager
def running_world(directory: Path, **settings: Any) -> Iterator[World]:
    started: list[Any] = []
    try:
        slack = FakeSlack().start()
        started.append(slack)
        telnyx = FakeTelnyx().start()
        started.append(telnyx)
        solapi = FakeSolapi().start()
        started.append(solapi)
        highlevel = FakeHighLevel().start()
        started.append(highlevel)
        values = {**provider_settings(telnyx, solapi, highlevel), **settings}
        bot = BotHarness(slack, f"sqlite:///{directory / 'smsops.db'}", **values).start()
        started.append(bot)
        yield World(bot, slack, telnyx, solapi, highlevel)
    finally:
        for thing in reversed(started):
            thing.stop()


@pytest.fixture(scope="module")
def world_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`world_factory(**settings)` once per module (later calls return the same world)."""
    worlds: list[World] = []
    stack: list[Any] = []
    made_with: list[dict[str, Any]] = []

    def make(**settings: Any) -> World:
        if not worlds:
            manager = running_world(tmp_path_factory.mktemp("world"), **settings)
            worlds.append(manager.__enter__())
            stack.append(manager)
            made_with.append(settings)
        assert settings == made_with[0], "one world per module: ask for it with the same settings"
        return worlds[0]

    yield make
    for manager in stack:
        manager.__exit__(None, None, None)

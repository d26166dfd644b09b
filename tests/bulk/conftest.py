"""A HighLevel fake with a small burst limit (20 requests / 2 s), and a bot wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.sandbox.harness import BotHarness
from bot.sandbox.highlevel import FakeHighLevel

LIMIT = (20, 2.0)


@pytest.fixture
def limited_highlevel() -> Iterator[FakeHighLevel]:
    fake = FakeHighLevel(rate_limit=LIMIT).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def bulk_bot(make_bot: Callable[..., BotHarness], limited_highlevel: FakeHighLevel) -> Callable[..., BotHarness]:
    def make(**settings: Any) -> BotHarness:
        return make_bot(highlevel_base_url=limited_highlevel.base_url, highlevel_token=limited_highlevel.token,
                        highlevel_location_id=limited_highlevel.location_id, **settings)
    return make

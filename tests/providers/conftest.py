"""Fixtures for the provider clients, each against its fake over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from bot.providers.http import RetryPolicy
from bot.providers.solapi import SolapiClient
from bot.sandbox.solapi import FakeSolapi

SOLAPI_SENDER = "029302266"


@pytest.fixture
def fake_solapi() -> Iterator[FakeSolapi]:
    fake = FakeSolapi().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
async def solapi_client(fake_solapi: FakeSolapi) -> AsyncIterator[SolapiClient]:
    client = SolapiClient(
        fake_solapi.api_key,
        fake_solapi.api_secret,
        base_url=fake_solapi.url,
        sender=SOLAPI_SENDER,
        connect_timeout=1.0,
        read_timeout=2.0,
        retry=RetryPolicy(attempts=3, backoff=0.05, max_wait=5.0),
    )
    try:
        yield client
    finally:
        await client.aclose()

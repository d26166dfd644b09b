"""The client-side rate limiter: at most `limit` requests per window, learnt from headers, 429 → pause."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.providers.base import ErrorKind, ProviderError, SendState
from bot.providers.highlevel import HighLevelClient
from bot.providers.http import RetryPolicy
from bot.providers.ratelimit import RateLimiter, default_limiter
from bot.providers.telnyx import TelnyxClient
from bot.sandbox.highlevel import FakeHighLevel
from bot.sandbox.telnyx import FakeTelnyx


async def _request(limiter: RateLimiter, sent: list[float], took: float = 0.01) -> None:
    await limiter.acquire()
    sent.append(time.monotonic())
    try:
        await asyncio.sleep(took)
    finally:
        limiter.release()


def _max_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def test_never_more_than_the_limit_in_any_window_and_close_to_it() -> None:
    limiter = RateLimiter("x", limit=5, window=0.2, margin=0.0)
    sent: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(_request(limiter, sent) for _ in range(20)))
    elapsed = time.monotonic() - started
    assert _max_in_any_window(sent, 0.2) <= 5
    assert 0.6 <= elapsed < 1.2  # four windows' worth: the first five at once, then five per window
    assert limiter.requests == 20 and limiter.throttled_seconds > 0


async def test_no_limit_known_means_no_waiting() -> None:
    limiter = RateLimiter("solapi")
    sent: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(_request(limiter, sent, took=0.0) for _ in range(200)))
    assert time.monotonic() - started < 0.5
    assert limiter.throttled_seconds == 0


def test_learns_highlevel_and_telnyx_headers() -> None:
    highlevel = default_limiter("highlevel")
    assert (highlevel.limit, highlevel.window) == (100, 10.0)
    highlevel.observe({"x-ratelimit-max": "40", "x-ratelimit-remaining": "39",
                       "x-ratelimit-interval-milliseconds": "2000", "x-ratelimit-limit-daily": "200000"})
    assert (highlevel.limit, highlevel.window) == (40, 2.0)

    telnyx = default_limiter("telnyx")
    assert telnyx.limit is None
    telnyx.observe({"x-ratelimit-limit": "30", "x-ratelimit-remaining": "29", "x-ratelimit-reset": "3"})
    assert (telnyx.limit, telnyx.window) == (30, 3.0)
    telnyx.observe({"x-ratelimit-limit": "30", "x-ratelimit-remaining": "20", "x-ratelimit-reset": "1"})
    assert telnyx.window == 3.0  # the longest time-to-reset seen is the window

    draft = RateLimiter("other")
    draft.observe({"ratelimit-limit": "10", "ratelimit-policy": "10;w=60"})
    assert (draft.limit, draft.window) == (10, 60.0)


async def test_a_spent_quota_we_did_not_spend_pauses_everyone_until_the_reset() -> None:
    limiter = RateLimiter("telnyx", limit=10, window=1.0)
    limiter.observe({"x-ratelimit-limit": "10", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "0.3"})
    started = time.monotonic()
    await limiter.acquire()
    limiter.release()
    assert 0.25 <= time.monotonic() - started < 0.6


async def test_a_429_pauses_every_caller_and_a_long_one_fails_fast() -> None:
    limiter = RateLimiter("x")
    limiter.penalise(0.3)
    sent: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(_request(limiter, sent, took=0.0) for _ in range(5)))
    assert min(sent) - started >= 0.28
    assert limiter.rejections == 1

    limiter.penalise(120.0)
    with pytest.raises(ProviderError) as caught:
        await limiter.acquire(max_wait=20.0)
    assert caught.value.kind is ErrorKind.RATE_LIMITED
    assert caught.value.retry_after is not None and caught.value.retry_after > 100


async def test_a_client_runs_at_the_highlevel_fakes_limit_without_a_429() -> None:
    with FakeHighLevel(rate_limit=(10, 0.5)) as fake:
        ids = [fake.add_message() for _ in range(30)]
        client = HighLevelClient(fake.token, base_url=fake.base_url,
                                 retry=RetryPolicy(attempts=3, backoff=0.05, max_wait=5.0))
        limiter = client._http.rate_limiter
        limiter.limit, limiter.window = 10, 0.5  # as its headers will say
        try:
            started = time.monotonic()
            states = await asyncio.gather(*(client.cancel(i) for i in ids))
            elapsed = time.monotonic() - started
        finally:
            await client.aclose()
    assert {s.state for s in states} == {SendState.CANCELLED}
    assert limiter.rejections == 0
    assert 0.95 <= elapsed < 2.0  # 30 at 10 per 0.5 s: two full waits, and little more
    assert len(fake.server.requests_to("DELETE")) == 30


async def test_telnyx_learns_its_limit_from_the_headers_and_recovers_from_429() -> None:
    with FakeTelnyx(rate_limit=(5, 1.0)) as fake:
        ids = [fake.add_message() for _ in range(12)]
        client = TelnyxClient(fake.api_key, base_url=fake.base_url,
                              retry=RetryPolicy(attempts=5, backoff=0.05, max_wait=5.0))
        try:
            states = await asyncio.gather(*(client.status(i) for i in ids))
        finally:
            await client.aclose()
    limiter = client._http.rate_limiter
    assert {s.state for s in states} == {SendState.SCHEDULED}
    assert limiter.limit == 5 and limiter.window == 1.0
    # Before the first answer it knew no limit: of the first burst of 12, 7 met a 429. After that
    # everyone waited out the pause and the headers paced the retries: no second refusal.
    assert limiter.rejections <= 12 - 5
    assert len(fake.server.requests_to("GET")) == 12 + limiter.rejections

"""A client-side rate limiter for one provider account, so a bulk job runs at the limit, not past it.

The rule it keeps: at most `limit` requests whose answer came back less than `window` seconds ago,
counting the ones still in flight. A permit is taken before a request and handed back `window`
seconds after its answer arrived. Since a request reaches the provider before its answer reaches us,
any `window`-long stretch of the provider's clock then holds at most `limit` of our requests: this
never overruns a fixed window (HighLevel's burst limit, the Telnyx fake) nor a sliding one, whatever
the network latency, and costs only one round trip per window of throughput.

It learns from what the provider says:
- HighLevel: `X-RateLimit-Max` and `X-RateLimit-Interval-Milliseconds` (100 per 10 s by default).
- Telnyx and others: `x-ratelimit-limit` (or `ratelimit-limit`), with the window taken from the
  largest `x-ratelimit-reset` seen on a successful answer (the seconds until the window resets).
- `…-remaining: 0` while we think we have permits left means someone else shares the quota: wait
  until the reset (or one window).
- A 429 pauses every caller, not just the one refused, for the provider's Retry-After (or its reset,
  or one window), so one refusal does not become a storm of them. A pause longer than the caller is
  willing to wait is reported at once as RATE_LIMITED, without asking the provider again.
- HighLevel's daily quota (`X-RateLimit-Daily-Remaining`, of `X-RateLimit-Limit-Daily`): once it
  reads 0, every request is refused at once as RATE_LIMITED, saying the day's quota is spent, instead
  of waiting and retrying; one request is let through again after DAILY_RECHECK to learn whether the
  quota was renewed (HighLevel does not document when its day starts).
A provider that sends no such headers (Solapi documents none) is not throttled until it answers 429.
"""

from __future__ import annotations

import asyncio
import heapq
import re
import time
from collections.abc import Callable, Mapping

from bot.providers.base import ErrorKind, ProviderError

DEFAULT_WINDOW = 1.0  # when a provider gives a limit but no way to learn its window
DEFAULT_PAUSE = 1.0  # after a 429 that says nothing about how long to wait
LIMIT_HEADERS = ("x-ratelimit-max", "x-ratelimit-limit", "ratelimit-limit")
REMAINING_HEADERS = ("x-ratelimit-remaining", "ratelimit-remaining")
RESET_HEADERS = ("x-ratelimit-reset", "ratelimit-reset")
INTERVAL_MS_HEADER = "x-ratelimit-interval-milliseconds"
DAILY_REMAINING_HEADER = "x-ratelimit-daily-remaining"
DAILY_LIMIT_HEADER = "x-ratelimit-limit-daily"
DAILY_RECHECK = 600.0  # seconds: how long a spent daily quota is believed before one request checks
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)")
_POLICY_WINDOW = re.compile(r";\s*w\s*=\s*(\d+(?:\.\d+)?)")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    match = _NUMBER.match(value)
    return float(match.group(1)) if match else None


def _first(headers: Mapping[str, str], names: tuple[str, ...]) -> tuple[float | None, str | None]:
    for name in names:
        raw = headers.get(name)
        value = _number(raw)
        if value is not None:
            return value, raw
    return None, None


def reset_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds until the provider's window resets: a delay, or an epoch timestamp."""
    value, _ = _first(headers, RESET_HEADERS)
    if value is None:
        return None
    if value > 10**9:
        value -= time.time()
    return max(0.0, value)


class RateLimiter:
    """One provider account's request budget, shared by every caller on the event loop."""

    def __init__(
        self,
        provider: str,
        limit: int | None = None,
        window: float | None = None,
        *,
        adapt: bool = True,
        margin: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.limit = limit
        self.window = window
        self.adapt = adapt  # learn the limit and window from the provider's headers
        self.margin = margin  # added to each permit's cool-down, for clock granularity
        self._clock = clock
        self._in_flight = 0
        self._cooling: list[float] = []  # heap: when each used permit may be used again
        self._paused_until = 0.0
        self._daily_spent_until = 0.0
        self.daily_limit: int | None = None
        self._changed: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # what happened, for benchmarks and logs
        self.requests = 0
        self.throttled_seconds = 0.0
        self.rejections = 0
        self.pauses = 0

    def __repr__(self) -> str:
        shown = f"{self.limit}/{self.window:g}s" if self.limit and self.window else "unlimited"
        return f"RateLimiter({self.provider}, {shown})"

    # --- the permits ----------------------------------------------------------------------------
    async def acquire(self, max_wait: float | None = None) -> None:
        """Wait for a permit. Raises RATE_LIMITED at once when a pause would outlast `max_wait`."""
        started: float | None = None
        if self.daily_spent():
            raise self.daily_error()
        while True:
            now = self._clock()
            wait = self._wait(now)
            if wait == 0.0:
                break
            if wait is not None and max_wait is not None and wait > max_wait:
                raise ProviderError(
                    self.provider, ErrorKind.RATE_LIMITED,
                    f"rate limited: the next request may go in {wait:.0f} s", retry_after=wait,
                )
            if started is None:
                started = now
            changed = self._event()
            try:
                async with asyncio.timeout(wait):
                    await changed.wait()
            except TimeoutError:
                pass
        if started is not None:
            self.throttled_seconds += self._clock() - started
        self._in_flight += 1
        self.requests += 1

    def release(self) -> None:
        """The answer (or the failure) of a request that held a permit has arrived."""
        self._in_flight = max(0, self._in_flight - 1)
        if self.limit is not None:
            heapq.heappush(self._cooling, self._clock() + (self.window or DEFAULT_WINDOW) + self.margin)
        self._notify()

    def _wait(self, now: float) -> float | None:
        """0: go now; seconds: look again then; None: look again when a request finishes."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.limit is None:
            return 0.0
        cooling = self._cooling
        while cooling and cooling[0] <= now:
            heapq.heappop(cooling)
        if self._in_flight + len(cooling) < self.limit:
            return 0.0
        return cooling[0] - now if cooling else None

    def _used(self) -> int:
        now = self._clock()
        return self._in_flight + sum(1 for t in self._cooling if t > now)

    # --- the daily quota -----------------------------------------------------------------------
    def daily_spent(self) -> bool:
        return self._clock() < self._daily_spent_until

    def daily_error(self) -> ProviderError:
        of = f" of {self.daily_limit} requests" if self.daily_limit else ""
        wait = max(0.0, self._daily_spent_until - self._clock())
        return ProviderError(
            self.provider, ErrorKind.RATE_LIMITED,
            f"the daily request quota{of} is spent: no request can go until it is renewed; try again later",
            code="DailyQuota", retry_after=wait,
        )

    def _observe_daily(self, headers: Mapping[str, str]) -> None:
        limit = _number(headers.get(DAILY_LIMIT_HEADER))
        if limit is not None and limit >= 1:
            self.daily_limit = int(limit)
        remaining = _number(headers.get(DAILY_REMAINING_HEADER))
        if remaining is not None and remaining <= 0:
            self._daily_spent_until = self._clock() + DAILY_RECHECK
        elif remaining is not None:
            self._daily_spent_until = 0.0

    # --- what the provider says -----------------------------------------------------------------
    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from the rate-limit headers of an answer that was not a 429."""
        self._observe_daily(headers)  # a spent day is a fact, not a pacing hint: learnt even without adapt
        if not self.adapt:
            return
        limit, raw_limit = _first(headers, LIMIT_HEADERS)
        interval_ms = _number(headers.get(INTERVAL_MS_HEADER))
        reset = reset_seconds(headers)
        changed = False
        if limit is not None and limit >= 1 and int(limit) != self.limit:
            self.limit, changed = int(limit), True
        policy = _POLICY_WINDOW.search(raw_limit or "") or _POLICY_WINDOW.search(
            headers.get("ratelimit-policy", ""))
        if interval_ms is not None and interval_ms > 0:
            self.window = interval_ms / 1000.0
        elif policy is not None:
            self.window = float(policy.group(1))
        elif reset is not None and self.limit is not None and reset > (self.window or 0.0):
            self.window = reset  # the longest time-to-reset seen is the window's length, or near it
        remaining, _ = _first(headers, REMAINING_HEADERS)
        if remaining is not None and remaining <= 0 and (self.limit is None or self._used() < self.limit):
            # The quota is spent though we did not spend it all: someone else shares it.
            self.pause(reset if reset is not None else (self.window or DEFAULT_PAUSE))
        if changed:
            self._notify()

    def penalise(self, retry_after: float | None, headers: Mapping[str, str] | None = None) -> None:
        """The provider answered 429: every caller waits before the next request."""
        self.rejections += 1
        if headers is not None:
            self._observe_daily(headers)
        if headers is not None and self.adapt:
            limit, _ = _first(headers, LIMIT_HEADERS)
            interval_ms = _number(headers.get(INTERVAL_MS_HEADER))
            if limit is not None and limit >= 1:
                self.limit = int(limit)
            if interval_ms is not None and interval_ms > 0:
                self.window = interval_ms / 1000.0
        wait = retry_after
        if wait is None and headers is not None:
            wait = reset_seconds(headers)
        self.pause(wait if wait is not None else (self.window or DEFAULT_PAUSE))

    def pause(self, seconds: float) -> None:
        until = self._clock() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1

    # --- waking the waiters ---------------------------------------------------------------------
    def _event(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        if self._changed is None or self._loop is not loop:
            self._changed, self._loop = asyncio.Event(), loop
        return self._changed

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


def default_limiter(provider: str) -> RateLimiter:
    """What each client starts with before any header: HighLevel's documented burst limit
    (100 requests per 10 s); Telnyx and Solapi learn theirs from their answers."""
    if provider == "highlevel":
        return RateLimiter(provider, limit=100, window=10.0)
    return RateLimiter(provider)

"""The HTTP plumbing the provider clients share: timeouts, safe retries, and error mapping.

Retries follow one rule: repeat only what is harmless to repeat. Reads, cancels and deletes are
retried on 5xx, dropped connections and timeouts; a 429 is retried after the provider's
Retry-After (or rate-limit reset) for every request, because the provider did not act on it.
A non-idempotent request (a send, a schedule) is never repeated after a timeout or 5xx: the caller
must ask the provider what happened first.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict

import httpx

from bot.infra.metrics import PROVIDER_CALLS, PROVIDER_SECONDS
from bot.providers.base import ErrorKind, MessageState, ProviderError, ScheduleOutcome
from bot.providers.ratelimit import RateLimiter, default_limiter
from bot.providers.transport import AiohttpTransport

log = logging.getLogger(__name__)

# Set by whoever wants to hear about retries (e.g. to tell the user "Telnyx is slow, retrying…").
RetryListener = Callable[[str, int, ProviderError], Awaitable[None]]
retry_listener: contextvars.ContextVar[RetryListener | None] = contextvars.ContextVar(
    "retry_listener", default=None
)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # total attempts for a request that may be repeated
    backoff: float = 0.25  # seconds before the 2nd attempt; doubles each time, with jitter
    max_wait: float = 20.0  # the longest Retry-After we are willing to honour inline


class ConnectionOptions(TypedDict, total=False):
    """How a provider client reaches its API, passed on as they are to its ProviderHTTP, whose defaults
    apply: the timeouts (seconds), the retry policy, and a transport (the tests pass their own)."""

    connect_timeout: float
    read_timeout: float
    retry: RetryPolicy | None
    transport: httpx.AsyncBaseTransport | None


ErrorParser = Callable[[httpx.Response, Any], ProviderError]
HeaderFactory = Callable[[], Mapping[str, str]]


def parse_retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait, from Retry-After (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) or the
    providers' rate-limit reset headers. `now` is the epoch time to measure a date against."""
    current = time.time() if now is None else now
    for header in ("retry-after", "x-ratelimit-reset", "ratelimit-reset"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            moment = _http_date(value) if header == "retry-after" else None
            if moment is None:
                continue
            return max(0.0, moment.timestamp() - current)
        # x-ratelimit-reset may be an epoch timestamp rather than a delay
        if seconds > 10**9:
            seconds = seconds - current
        return max(0.0, seconds)
    return None


def _http_date(value: str) -> datetime | None:
    """`Wed, 21 Oct 2015 07:28:00 GMT` → an aware datetime; None when it is no date."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ProviderHTTP:
    """An httpx.AsyncClient bound to one provider, with its error parser and auth headers."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        error_parser: ErrorParser,
        auth_headers: HeaderFactory,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self.provider = provider
        # paces every request of this client (see bot/providers/ratelimit.py)
        self.rate_limiter = rate_limiter if rate_limiter is not None else default_limiter(provider)
        self._error_parser = error_parser
        self._auth_headers = auth_headers
        self._retry = retry or RetryPolicy()
        timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        limits = httpx.Limits(max_connections=50, max_keepalive_connections=20)
        if transport is None:
            transport = AiohttpTransport(connect_timeout=connect_timeout, read_timeout=read_timeout,
                                         max_connections=limits.max_connections or 50)
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            limits=limits,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "smsops/0.1"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        idempotent: bool,
        operation: str | None = None,
        form_body: Mapping[str, str] | None = None,
        parse: Callable[[Any], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send, retrying where safe; return the decoded JSON body (or None for an empty body), or
        what `parse` makes of it.

        `operation` names the call in the metrics (`smsops_provider_calls_total` and
        `smsops_provider_call_seconds`); by default it is the method and the path with its ids
        replaced, such as `DELETE /messages/{id}`. `form_body` is sent form-encoded instead of
        `json_body` (Twilio's API takes forms). `parse` reads the body as the provider documents
        it; the ProviderError it raises (`garbage` for JSON of the wrong shape) is the call's outcome
        in the metrics, as it is in the ledger: an answer the bot could not use is not counted `ok`.
        `headers` are sent on every attempt (an Idempotency-Key makes a schedule safe to repeat: pass
        `idempotent=True` with it)."""
        operation = operation or operation_of(method, path)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._once(method, path, json_body=json_body, params=params, operation=operation,
                                        form_body=form_body, parse=parse, headers=headers)
            except ProviderError as error:
                if not self._should_retry(error, idempotent, attempt):
                    raise
                wait = self._wait_for(error, attempt)
                listener = retry_listener.get()
                if listener is not None:
                    try:
                        await listener(self.provider, attempt, error)
                    except Exception:  # a listener must never break the call itself
                        log.exception("retry listener failed")
                log.info(
                    "provider retry",
                    extra={"provider": self.provider, "attempt": attempt, "error": str(error), "wait": wait},
                )
                await asyncio.sleep(wait)

    def _should_retry(self, error: ProviderError, idempotent: bool, attempt: int) -> bool:
        if attempt >= self._retry.attempts:
            return False
        if error.kind is ErrorKind.RATE_LIMITED:
            return error.retry_after is None or error.retry_after <= self._retry.max_wait
        return idempotent and error.kind in {ErrorKind.UNAVAILABLE, ErrorKind.TIMEOUT}

    def _wait_for(self, error: ProviderError, attempt: int) -> float:
        if error.retry_after is not None:
            return error.retry_after
        base = self._retry.backoff * (2 ** (attempt - 1))
        return base + random.uniform(0, base / 2)

    async def _once(
        self, method: str, path: str, *, json_body: Any, params: Mapping[str, Any] | None,
        operation: str | None = None, form_body: Mapping[str, str] | None = None,
        parse: Callable[[Any], Any] | None = None, headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One HTTP exchange, counted and timed (each attempt of a retried request is one call)."""
        operation = operation or operation_of(method, path)
        await self.rate_limiter.acquire(self._retry.max_wait)  # our own pacing: not the provider's time
        started = time.perf_counter()
        outcome = "ok"
        try:
            body = await self._exchange(method, path, json_body=json_body, params=params, form_body=form_body,
                                        extra_headers=headers)
            return body if parse is None else parse(body)
        except ProviderError as error:
            outcome = str(error.kind)
            raise
        except Exception:
            outcome = "error"  # a bug or an unexpected library error, not an answer from the provider
            raise
        except BaseException:
            outcome = "cancelled"  # a shutdown or a caller's timeout: neither ok nor an answer
            raise
        finally:
            self.rate_limiter.release()
            PROVIDER_SECONDS.labels(provider=self.provider, operation=operation).observe(
                time.perf_counter() - started)
            PROVIDER_CALLS.labels(provider=self.provider, operation=operation, outcome=outcome).inc()

    async def _exchange(
        self, method: str, path: str, *, json_body: Any, params: Mapping[str, Any] | None,
        form_body: Mapping[str, str] | None = None, extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        headers = dict(self._auth_headers())  # fresh on every attempt (Solapi signs each one)
        if extra_headers:
            headers.update(extra_headers)
        try:
            if form_body is not None:
                response = await self._client.request(
                    method, path, data=dict(form_body), params=params, headers=headers
                )
            else:
                response = await self._client.request(
                    method, path, json=json_body, params=params, headers=headers
                )
        except httpx.TimeoutException as exc:
            raise ProviderError(
                self.provider, ErrorKind.TIMEOUT, f"no answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderError(
                self.provider, ErrorKind.UNAVAILABLE, f"connection failed ({type(exc).__name__})"
            ) from exc
        if response.status_code != 429:
            self.rate_limiter.observe(response.headers)
        body = _decode(response)
        if response.is_success:
            if body is _UNREADABLE:
                raise self._unreadable("answer", response)
            return body
        if response.status_code == 429:
            error = self._error_parser(response, None if body is _UNREADABLE else body)
            error.kind = ErrorKind.RATE_LIMITED
            # The headers win; a parser may supply a provider-specific fallback (HighLevel sends
            # no Retry-After, only its window length).
            header_wait = parse_retry_after(response)
            if header_wait is not None:
                error.retry_after = header_wait
            self.rate_limiter.penalise(error.retry_after, response.headers)  # every caller backs off
            if self.rate_limiter.daily_spent():
                raise self.rate_limiter.daily_error()  # not a burst: waiting seconds will not help
            raise error
        if response.status_code >= 500 or response.status_code == 408:
            # 408 Request Timeout is transient like a 5xx (RFC 9110 §15.5.9: the client may repeat
            # the request), so it is retried for idempotent requests only, and its outcome is unknown.
            parsed = self._error_parser(response, None if body is _UNREADABLE else body)
            parsed.kind = ErrorKind.UNAVAILABLE if response.status_code >= 500 else ErrorKind.TIMEOUT
            raise parsed
        if body is _UNREADABLE:
            raise self._unreadable("error answer", response)
        raise self._error_parser(response, body)

    def _unreadable(self, what: str, response: httpx.Response) -> ProviderError:
        """A body that is not JSON at all (an HTML error page, a truncated answer), shown as it began."""
        return ProviderError(
            self.provider,
            ErrorKind.GARBAGE,
            f"unreadable {what}: {_snippet(response)}",
            http_status=response.status_code,
        )


_STATIC_SEGMENT = re.compile(r"^(?:v\d{1,2}|[a-z][a-z_-]{0,23})$")


def operation_of(method: str, path: str) -> str:
    """`DELETE /messages/0b5c…` → `DELETE /messages/{id}`: a metric label that does not grow with ids.

    A path segment stays when it is a lowercase word or an API version; anything else (UUIDs,
    Solapi group ids, HighLevel's mixed-case ids, numbers, escaped text) becomes `{id}`."""
    bare = path.split("?", 1)[0]
    segments = ["{id}" if seg and not _STATIC_SEGMENT.match(seg) else seg for seg in bare.split("/")]
    return f"{method.upper()} {'/'.join(segments)}"


class _Unreadable:
    pass


_UNREADABLE: Any = _Unreadable()


def _decode(response: httpx.Response) -> Any:
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return _UNREADABLE


def _snippet(response: httpx.Response, limit: int = 80) -> str:
    text = response.content[:limit].decode("utf-8", "replace").replace("\n", " ").strip()
    ctype = response.headers.get("content-type", "no content type")
    return f"{ctype}, starting {text!r}"


def kind_for_status(status: int) -> ErrorKind:
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status == 429:
        return ErrorKind.RATE_LIMITED
    if status >= 500:
        return ErrorKind.UNAVAILABLE
    return ErrorKind.REJECTED


async def schedule_each(
    recipients: tuple[str, ...],
    schedule_one: Callable[[str], Awaitable[MessageState | ProviderError]],
    *,
    in_flight: int,
) -> ScheduleOutcome:
    """Schedule one message per recipient, as Telnyx, Twilio and HighLevel take them, at most `in_flight`
    requests at a time. A recipient's refusal is its own result, so it does not stop the others."""
    gate = asyncio.Semaphore(in_flight)

    async def one(recipient: str) -> MessageState | ProviderError:
        async with gate:
            try:
                return await schedule_one(recipient)
            except ProviderError as error:
                return error

    results = await asyncio.gather(*(one(recipient) for recipient in recipients))
    return ScheduleOutcome.of(recipients, results)


def garbage(provider: str, what: str) -> ProviderError:
    """A body that parsed as JSON but is not what the provider documents."""
    return ProviderError(provider, ErrorKind.GARBAGE, f"unexpected answer: {what}")

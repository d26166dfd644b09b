"""httpx's client API over aiohttp's connection pool, for the provider clients."""

from __future__ import annotations

import aiohttp
import httpx

from bot.infra.loop_session import LoopSession


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx's client API (what the providers and their tests are written against) over aiohttp's
    connection pool. httpcore's pool looks at every pooled connection, polling its socket, for each
    request: with the 20–50 connections of a busy bot that was most of the cost of a provider call
    (bench/README.md, section 2); aiohttp keeps idle connections per host in a queue.

    Timeouts as httpx's: `connect_timeout` to open a connection, `read_timeout` for each read and for
    waiting for a free connection. aiohttp's errors become httpx's (a timeout a TimeoutException, any other
    transport failure a TransportError), so ProviderHTTP maps and retries them as before. The body is
    passed on undecoded (httpx decodes it), one session per event loop."""

    def __init__(self, *, connect_timeout: float, read_timeout: float, max_connections: int = 50) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=read_timeout, sock_connect=connect_timeout,
                                        sock_read=read_timeout)
        self._sessions = LoopSession(lambda: aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0), timeout=timeout,
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            trust_env=False))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._sessions.get()
        body = await request.aread()
        try:
            async with session.request(request.method, str(request.url), headers=request.headers.multi_items(),
                                       data=body or None, allow_redirects=False,
                                       compress=None) as answer:
                content = await answer.read()
                headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in answer.raw_headers]
                status = answer.status
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(f"{type(exc).__name__}: {exc}", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:  # dropped, reset, a broken or truncated answer
            raise httpx.ReadError(f"{type(exc).__name__}: {exc}", request=request) from exc
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content), request=request)

    async def aclose(self) -> None:
        await self._sessions.aclose()

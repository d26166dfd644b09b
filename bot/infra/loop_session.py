"""One aiohttp session per running event loop, for clients the bot keeps for its whole life."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp


class LoopSession:
    """The session `make` returns, made on first use and again when the event loop changes: a session
    belongs to the loop it was made on and cannot be used, or closed, from another (tests and the
    console run several loops in one process)."""

    def __init__(self, make: Callable[[], aiohttp.ClientSession]) -> None:
        self._make = make
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def get(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._session = self._make()
            self._loop = loop
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed and self._loop is asyncio.get_running_loop():
            await session.close()

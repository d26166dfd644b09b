"""Run an ASGI app on 127.0.0.1 in a background thread, with recorded requests and injected faults."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FaultKind = Literal["latency", "status", "drop", "garbage", "lose_answer"]


@dataclass
class Fault:
    """One injected misbehaviour. `times=None` means every matching request."""

    kind: FaultKind
    method: str | None = None
    path_contains: str | None = None
    times: int | None = None
    seconds: float = 0.0  # latency
    status: int = 500  # status / garbage
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return not (self.path_contains and self.path_contains not in path)


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, kind: FaultKind, **kwargs: Any) -> Fault:
        fault = Fault(kind=kind, **kwargs)
        with self._lock:
            self._faults.append(fault)
        return fault

    def latency(self, seconds: float, **kwargs: Any) -> Fault:
        return self.add("latency", seconds=seconds, **kwargs)

    def status(self, status: int, body: bytes | str = b"", **kwargs: Any) -> Fault:
        data = body.encode() if isinstance(body, str) else body
        return self.add("status", status=status, body=data, **kwargs)

    def rate_limit(self, retry_after: float = 1, **kwargs: Any) -> Fault:
        headers = {"retry-after": str(retry_after), "content-type": "application/json"}
        headers.update(kwargs.pop("headers", {}))
        body = kwargs.pop("body", b'{"errors":[{"code":"10011","title":"Too many requests"}]}')
        return self.add("status", status=429, body=body, headers=headers, **kwargs)

    def drop(self, **kwargs: Any) -> Fault:
        return self.add("drop", **kwargs)

    def lose_answer(self, **kwargs: Any) -> Fault:
        """The provider acts on the request, but its answer is lost on the way (the connection drops)."""
        return self.add("lose_answer", **kwargs)

    def garbage(self, body: bytes | str = b"<html><body>502 Bad Gateway</body></html>", status: int = 200,
                **kwargs: Any) -> Fault:
        data = body.encode() if isinstance(body, str) else body
        headers = kwargs.pop("headers", {"content-type": "text/html"})
        return self.add("garbage", status=status, body=data, headers=headers, **kwargs)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> list[Fault]:
        """The faults that apply to this request (latency first, then at most one answer-changing one)."""
        chosen: list[Fault] = []
        with self._lock:
            answer_taken = False
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.kind == "latency":
                    fault.hits += 1
                    chosen.insert(0, fault)
                elif not answer_taken:
                    fault.hits += 1
                    chosen.append(fault)
                    answer_taken = True
        return chosen


class FaultyRecordingApp:
    """ASGI middleware: records every HTTP request, then applies any matching fault."""

    def __init__(self, app: ASGIApp, faults: Faults, requests: list[RecordedRequest]) -> None:
        self.app = app
        self.faults = faults
        self.requests = requests
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        record = RecordedRequest(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode(),
            headers=headers,
            body=body,
            at=time.time(),
        )
        with self._lock:
            self.requests.append(record)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        for fault in self.faults.take(scope["method"], scope["path"]):
            if fault.kind == "latency":
                await asyncio.sleep(fault.seconds)
            elif fault.kind in ("status", "garbage"):
                await _answer(send, fault.status, fault.body, fault.headers)
                return
            elif fault.kind == "lose_answer":
                async def swallow(message: Message) -> None:
                    return None

                await self.app(scope, replay, swallow)  # the provider acts; its answer goes nowhere
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")]})
                await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
                raise ConnectionAbortedError("fault injection: answer lost")
            elif fault.kind == "drop":
                # Promise a body, send half of it, and close: the client sees a broken connection.
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")]})
                await send({"type": "http.response.body", "body": b'{"partial":', "more_body": True})
                raise ConnectionAbortedError("fault injection: connection dropped")
        await self.app(scope, replay, send)


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if not any(k == b"content-type" for k, _ in raw_headers):
        raw_headers.append((b"content-type", b"application/json"))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """Serves `app` on http://127.0.0.1:<port> from a daemon thread until stop()."""

    def __init__(self, app: ASGIApp, port: int | None = None, lifespan: Literal["auto", "on", "off"] = "off") -> None:
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        self.port = port or free_port()
        self._app = FaultyRecordingApp(app, self.faults, self.requests)
        config = uvicorn.Config(
            self._app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan,
            access_log=False, timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        self._thread = threading.Thread(target=self._server.run, name=f"fake:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("server thread died while starting (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("fake server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_to(self, method: str, path_contains: str = "") -> list[RecordedRequest]:
        return [r for r in list(self.requests) if r.method == method and path_contains in r.path]


class LocalService:
    """Something its FakeServer (`self.server`) runs on 127.0.0.1, a simulator or the bot itself: started
    and stopped with that server, or used as a context manager."""

    server: FakeServer

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Self:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A fork server for the crash suite: imports the bot once, then forks one real bot process per request.

Started by the tests as `python -m tests.faults.forkserver`. Each line on stdin is a JSON object
`{"env": {...}, "log": "/path/to/stderr.log"}`; the server forks, the child becomes the bot
(`bot.__main__.main([])`, HTTP mode, settings from `env`) with stdout and stderr appended to `log`,
and the server answers the child's pid on stdout. The test kills that pid with SIGKILL.

Forking from a warm interpreter makes a bot start in ~0.2 s instead of ~1.2 s, which is what lets
100 kill-and-restart runs fit in CI. The child is a full, separate process: its own event loop,
uvicorn server, database connections and provider clients, nothing shared with the test.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

# Everything the bot imports on its way up, imported before any fork (no threads are started here).
import alembic.command  # noqa: F401
import slack_bolt.adapter.starlette.async_handler  # noqa: F401
import sqlalchemy.dialects.sqlite  # noqa: F401
import uvicorn  # noqa: F401

import bot.__main__
import bot.server.runtime
import bot.server.webhooks
import db.migrate  # noqa: F401


def child(request: dict[str, object]) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    fd = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[call-overload]
    try:
        return int(bot.__main__.main([]) or 0)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 1
    except BaseException:
        traceback.print_exc()
        return 1


def main() -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = child(request)
            finally:
                os._exit(code)
        out.write(f"{pid}\n")
        out.flush()


if __name__ == "__main__":
    main()

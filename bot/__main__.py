"""`python -m bot` (or `smsops`): run the bot, or one of its maintenance commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from bot.infra import logs
from bot.infra.settings import Settings

USAGE = """\
{prog}                       run the bot: Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT;
{pad}                       without SLACK_BOT_TOKEN, on a terminal, the local console instead
{prog} console [--sandbox]   try the /sms commands in a local shell, no Slack needed
{prog} migrate               bring the database schema up to date
{prog} worker [--tasks N]    work on the Slack requests the bot processes queued (same DATABASE_URL;
{pad}                       PostgreSQL for more than one process); no HTTP, no Slack connection
{prog} audit [--json|--csv] [--target ID] [--actor UID] [--provider P] [--since WHEN] [--limit N]
{pad}                       print the ledger (read-only)
{prog} verify-ledger [--anchor SEQ:HASH]
{pad}                       check the ledger's hash chain end to end (read-only)

Settings come from the environment and ./.env (DATABASE_URL, SLACK_BOT_TOKEN, …: see the README).
"""


def program_name(argv0: str | None = None) -> str:
    """What the operator typed: `smsops` for the installed script, `python -m bot` for the module."""
    name = Path(sys.argv[0] if argv0 is None else argv0).name
    if name in ("", "__main__.py", "-c", "-m"):
        return "python -m bot"
    return name


def usage(prog: str | None = None) -> str:
    prog = prog or program_name()
    return USAGE.format(prog=prog, pad=" " * len(prog))


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors())
        raise SystemExit(f"smsops: bad setting: {problems}") from None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and not args[0].startswith("-") else "run"
    rest = args[1:] if args and not args[0].startswith("-") else args
    if command in ("-h", "--help", "help") or "-h" in args[:1] or "--help" in args[:1]:
        print(usage())
        return 0
    settings = load_settings()
    logs.setup(settings.log_level, settings.secrets())
    if command in ("run", "console"):
        from bot.domain.approval_rules import PolicyFileError
        from bot.operations.approval_rules import load_policy

        try:  # checked before anything starts: a mistake stops the bot with the file, line and reason
            load_policy(settings.sms_policy_file)
        except PolicyFileError as error:
            print(f"smsops: SMS_POLICY_FILE: {error}", file=sys.stderr)
            return 3
    from db.engine import DatabaseSettingError

    try:
        return _dispatch(command, rest, settings)
    except DatabaseSettingError as error:
        print(f"smsops: {error}", file=sys.stderr)
        return 3


def _uses_database_url(command: str, rest: list[str], settings: Settings) -> bool:
    """Whether this command works on DATABASE_URL (the sandbox console keeps a file of its own)."""
    if command == "console" or (command == "run" and settings.slack_bot_token is None):
        from bot.cli.console import database_for, has_provider_credentials

        if "-h" in rest or "--help" in rest or any(arg == "--db" or arg.startswith("--db=") for arg in rest):
            return False
        sandbox = "--sandbox" in rest or not has_provider_credentials(settings)
        return database_for(settings, sandbox, None) == settings.database_url
    return command in ("run", "migrate")


def _dispatch(command: str, rest: list[str], settings: Settings) -> int:
    from db.engine import check_url, probe

    if command in ("audit", "verify-ledger"):
        check_url(settings.database_url)  # they open it read-only themselves, and say where they looked
    elif _uses_database_url(command, rest, settings):
        probe(settings.database_url)  # before anything starts on it: one line, not a traceback later
    match command:
        case "run":
            return run(settings, rest)
        case "console":
            from bot.cli.console import console_main

            return console_main(rest, settings)
        case "worker":
            return worker(settings, rest)
        case "migrate":
            from db.migrate import upgrade

            upgrade(settings.database_url)
            print(f"database schema is up to date ({_shown_database(settings.database_url)})")
            return 0
        case "audit":
            from bot.cli.audit import audit_main

            return audit_main(rest, settings.database_url)
        case "verify-ledger":
            from bot.cli.audit import verify_main

            return verify_main(rest, settings.database_url)
    print(f"unknown command {command!r}\n\n{usage()}", file=sys.stderr)
    return 2


def _shown_database(url: str) -> str:
    from db.engine import describe

    return describe(url)


def run(settings: Settings, rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=program_name())
    parser.add_argument("--sandbox", action="store_true", help="use the simulated providers")
    options = parser.parse_args(rest)
    if settings.slack_bot_token is None:
        if sys.stdin.isatty():
            print("No SLACK_BOT_TOKEN is set: starting the local console instead (see README).\n")
            from bot.cli.console import console_main

            return console_main(["--sandbox"] if options.sandbox else [], settings)
        print("smsops: SLACK_BOT_TOKEN is not set. Put the Slack tokens in .env (see README), "
              f"or try `{program_name()} console`.", file=sys.stderr)
        return 2
    if options.sandbox:
        print("smsops: --sandbox is for the console; a Slack-connected bot uses real providers.", file=sys.stderr)
        return 2
    from bot.server.runtime import Runtime

    if settings.slack_app_token is not None:
        asyncio.run(_socket_mode(Runtime(settings), settings))
        return 0
    if settings.slack_signing_secret is None:
        print("smsops: SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode).",
              file=sys.stderr)
        return 2
    import uvicorn

    logging.getLogger("bot").info("HTTP mode", extra={"host": settings.host, "port": settings.port,
                                                      "processes": settings.web_concurrency})
    if settings.web_concurrency > 1:  # each process builds its own runtime (bot/server/runtime.py)
        from db.engine import is_sqlite

        if is_sqlite(settings.database_url):
            logging.getLogger("bot").warning(
                "WEB_CONCURRENCY > 1 on SQLite: its processes write one at a time; use PostgreSQL to gain from them")
        uvicorn.run("bot.server.runtime:asgi_from_environment", factory=True, workers=settings.web_concurrency,
                    host=settings.host, port=settings.port, log_config=None, access_log=False)
        return 0
    uvicorn.run(Runtime(settings).asgi(), host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0


def worker(settings: Settings, rest: list[str]) -> int:
    """A process that only takes queued Slack requests (bot/server/inbox.py) and does their work; the bot
    processes ack them. Reminders run here too (they fire once across processes)."""
    parser = argparse.ArgumentParser(prog=f"{program_name()} worker")
    parser.add_argument("--tasks", type=int, default=settings.inbox_workers or 16,
                        help="concurrent requests (default INBOX_WORKERS, or 16 when that is 0)")
    options = parser.parse_args(rest)
    if options.tasks < 1:
        parser.error("--tasks must be at least 1")
    from bot.server.runtime import Runtime

    if settings.worker_nice:
        os.nice(settings.worker_nice)
    runtime = Runtime(settings.model_copy(update={"inbox_workers": options.tasks}), role="worker")

    async def serve() -> None:
        await runtime.start()
        logging.getLogger("bot").info("worker started", extra={"tasks": options.tasks, "pid": os.getpid(),
                                                               "nice": os.getpriority(os.PRIO_PROCESS, 0)})
        try:
            await asyncio.Event().wait()  # until SIGINT; killed, its requests are taken again after INBOX_LEASE
        finally:
            await runtime.stop()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


async def _socket_mode(runtime: object, settings: Settings) -> None:
    import uvicorn

    from bot.server.http import build_asgi
    from bot.server.runtime import Runtime
    from bot.server.socket_mode import QueueingSocketModeHandler

    assert isinstance(runtime, Runtime)
    assert settings.slack_app_token is not None
    # /healthz, /metrics and webhooks are still served on PORT; Slack traffic comes over the socket.
    from bot.server.webhooks import telnyx_webhook_endpoint, twilio_webhook_endpoint

    side = build_asgi(runtime.app, runtime.services, runtime.signing_secret or "unused",
                      scheduler_running=runtime.scheduler_running,
                      telnyx_webhook=telnyx_webhook_endpoint(runtime.services),
                      twilio_webhook=twilio_webhook_endpoint(runtime.services))
    server = uvicorn.Server(uvicorn.Config(side, host=settings.host, port=settings.port, log_config=None,
                                           access_log=False))
    await runtime.start()
    # each envelope is acked after one durable write; the inbox's workers (here and in any `smsops worker`) do the work
    handler = QueueingSocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value(),
                                        runtime.services, runtime.inbox)
    try:
        await handler.connect_async()
        logging.getLogger("bot").info("Socket Mode connected")
        await server.serve()
    finally:
        await handler.close_async()
        await runtime.stop()


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m bot` (or `smsops`): run the bot, or one of its maintenance commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from bot import logs
from bot.settings import Settings

USAGE = """\
python -m bot                       run the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP on PORT)
python -m bot console [--sandbox]   try the /sms commands in a local shell, no Slack needed
python -m bot migrate               bring the database schema up to date
python -m bot audit [--json|--csv] [--target ID] [--actor UID] [--provider P] [--since WHEN] [--limit N]
python -m bot verify-ledger         check the ledger's hash chain end to end
"""


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
        print(USAGE)
        return 0
    settings = load_settings()
    logs.setup(settings.log_level, settings.secrets())
    match command:
        case "run":
            return run(settings, rest)
        case "console":
            from bot.console import console_main

            return console_main(rest, settings)
        case "migrate":
            from db.migrate import upgrade

            upgrade(settings.database_url)
            print("database schema is up to date")
            return 0
        case "audit":
            from bot.audit_cli import audit_main

            return audit_main(rest, settings.database_url)
        case "verify-ledger":
            from bot.audit_cli import verify_main

            return verify_main(rest, settings.database_url)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


def run(settings: Settings, rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    parser.add_argument("--sandbox", action="store_true", help="use the simulated providers")
    options = parser.parse_args(rest)
    if settings.slack_bot_token is None:
        if sys.stdin.isatty():
            print("No SLACK_BOT_TOKEN is set: starting the local console instead (see README).\n")
            from bot.console import console_main

            return console_main(["--sandbox"] if options.sandbox else [], settings)
        print("smsops: SLACK_BOT_TOKEN is not set. Put the Slack tokens in .env (see README), "
              "or try `python -m bot console`.", file=sys.stderr)
        return 2
    if options.sandbox:
        print("smsops: --sandbox is for the console; a Slack-connected bot uses real providers.", file=sys.stderr)
        return 2
    from bot.runtime import Runtime

    runtime = Runtime(settings)
    if settings.slack_app_token is not None:
        asyncio.run(_socket_mode(runtime, settings))
        return 0
    if settings.slack_signing_secret is None:
        print("smsops: SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode).",
              file=sys.stderr)
        return 2
    import uvicorn

    logging.getLogger("bot").info("HTTP mode", extra={"host": settings.host, "port": settings.port})
    uvicorn.run(runtime.asgi(), host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0


async def _socket_mode(runtime: object, settings: Settings) -> None:
    import uvicorn
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.http import build_asgi
    from bot.runtime import Runtime

    assert isinstance(runtime, Runtime)
    assert settings.slack_app_token is not None
    # /healthz, /metrics and webhooks are still served on PORT; Slack traffic comes over the socket.
    from bot.webhooks import telnyx_webhook_endpoint, twilio_webhook_endpoint

    side = build_asgi(runtime.app, runtime.services, runtime.signing_secret or "unused",
                      scheduler_running=runtime.scheduler_running,
                      telnyx_webhook=telnyx_webhook_endpoint(runtime.services),
                      twilio_webhook=twilio_webhook_endpoint(runtime.services))
    server = uvicorn.Server(uvicorn.Config(side, host=settings.host, port=settings.port, log_config=None,
                                           access_log=False))
    await runtime.start()
    handler = AsyncSocketModeHandler(runtime.app, settings.slack_app_token.get_secret_value())
    try:
        await handler.connect_async()
        logging.getLogger("bot").info("Socket Mode connected")
        await server.serve()
    finally:
        await handler.close_async()
        await runtime.stop()


if __name__ == "__main__":
    raise SystemExit(main())

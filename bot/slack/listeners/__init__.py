"""Each listener kind registers itself on the app."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.operations.services import Services
from bot.slack.listeners import actions, commands, home, views


def register(app: AsyncApp, services: Services) -> None:
    commands.register(app, services)
    actions.register(app, services)
    home.register(app, services)
    views.register(app, services)

"""Assembling and running the bot: the ASGI app (Slack events, health, metrics, webhooks)."""

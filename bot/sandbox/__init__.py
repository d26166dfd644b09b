"""Fake Slack Web API and fake providers, served over real HTTP on 127.0.0.1.

They are also the sandbox the bot runs against with `--sandbox` (no second simulator).
"""

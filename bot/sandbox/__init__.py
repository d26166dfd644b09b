"""The sandbox: a simulated Slack (Web API, response_url, Socket Mode) and simulated Solapi, HighLevel
and Telnyx, served over real HTTP on 127.0.0.1, plus the harness that talks to the bot as Slack does.

They keep the providers' documented rules, statuses and error bodies (Korean messages included), so
the local console (`python -m bot console`, bot.cli.console) and the test suite run the real bot
against them; in a checkout they also validate each request against the OpenAPI specs in
tests/specs (see telnyx.specs_dir). This is not production code: nothing on the production path
imports it (tests/unit/test_layers.py keeps it so); only the console and the tests do.
"""

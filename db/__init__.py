"""The ledger and the bot's state: models, queries, migrations."""

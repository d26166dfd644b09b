"""The shell commands: `python -m bot audit`, `verify-ledger` and the local console."""

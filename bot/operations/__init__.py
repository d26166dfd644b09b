"""One use case per verb: permission and policy, ledger intent, provider call, ledger outcome."""

"""The Slack side: listeners, Block Kit rendering, the notifier."""

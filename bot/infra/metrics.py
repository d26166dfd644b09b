"""Prometheus metrics, served on GET /metrics."""

from prometheus_client import Counter, Histogram

COMMANDS = Counter("smsops_commands_total", "/sms commands by verb and outcome", ["command", "outcome"])
CLICKS = Counter("smsops_clicks_total", "Button clicks by action and outcome", ["action", "outcome"])
ACK_SECONDS = Histogram(
    "smsops_ack_seconds", "Time from receiving a Slack request to acknowledging it", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0),
)
PROVIDER_CALLS = Counter(
    "smsops_provider_calls_total", "Provider calls by provider, operation and outcome",
    ["provider", "operation", "outcome"],
)
PROVIDER_SECONDS = Histogram(
    "smsops_provider_call_seconds", "Provider call latency", ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
REMINDERS = Counter("smsops_reminders_total", "Reminders by outcome (posted, missed, skipped)", ["outcome"])
WEBHOOKS = Counter("smsops_webhooks_total", "Provider delivery webhooks by provider and outcome",
                   ["provider", "outcome"])

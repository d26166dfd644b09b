"""smsops: a Slack chat-ops bot for scheduled SMS across Solapi/CoolSMS, HighLevel and Telnyx."""

__version__ = "0.1.0"

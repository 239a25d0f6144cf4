"""Notify: alerts posted to Slack and JSON webhooks from a persistent outbox."""

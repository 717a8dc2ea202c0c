"""Alerting: threshold rules and campaign events, delivered as signed webhooks (docs/alerts.md)."""

"""Alerts: rules (pure), evaluation against the store, delivery by webhook and e-mail."""

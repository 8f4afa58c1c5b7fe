"""Cron endpoints inside a Flask app: registration, the run context, and the HTTP views."""

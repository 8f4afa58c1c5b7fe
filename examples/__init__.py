"""Example cron jobs mounted by the demo app (wsgi.py): copy them into your own Flask app."""

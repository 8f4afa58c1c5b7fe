"""The demo build: the gateway's web app with the example cron endpoints mounted.

gunicorn -c config/gunicorn.conf.py wsgi:app
"""

from __future__ import annotations

from examples.jobs import cron
from gateway import create_app

app = create_app()
cron.init_app(app)

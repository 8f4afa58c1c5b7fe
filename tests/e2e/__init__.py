"""End-to-end tests: real gunicorn (and `python -m gateway up`) on 127.0.0.1, real databases."""

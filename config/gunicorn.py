"""gunicorn settings for production: `gunicorn -c config/gunicorn.py config.wsgi:application` (docs/operations.md).

gthread workers (threads serve the synchronous views and the demo's chunked stream). `timeout` is the worker
heartbeat: a worker whose threads all stay blocked past it is killed and replaced, so a hung request cannot hold a
worker forever. It sits above the demo's longest generation (RIGFIT_DEMO_MAX_WALL_S, 60 s by default), which is
the longest a healthy request runs. Every value can be overridden from the environment (GUNICORN_*).
"""

from __future__ import annotations

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 8)
timeout = _int("GUNICORN_TIMEOUT", _int("RIGFIT_DEMO_MAX_WALL_S", 60) + 30)
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Request-line and header caps (gunicorn's defaults, stated): bodies are capped by Django (2 MiB).
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
# No max_requests: recycling a worker would reload the demo model (tens of seconds) in the middle of traffic.
accesslog = "-"
errorlog = "-"

"""WSGI entry point: `gunicorn --bind 0.0.0.0:9090 --threads 8 _wsgi:app` from this folder
(with LS_LLMTRACE_BACKEND_USER/_PASSWORD or _TOKEN set: the app refuses to start without)."""

from __future__ import annotations

import logging
import os

from model import build_app

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"),
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = build_app()

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "9090")))

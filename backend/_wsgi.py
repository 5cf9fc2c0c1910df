"""WSGI entry point: `gunicorn --bind 0.0.0.0:9090 _wsgi:app` from this folder."""

from __future__ import annotations

import logging
import os

from ls_llmtrace.mlbackend import create_app
from model import LLMTraceJudge

logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
app = create_app(LLMTraceJudge())

if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "9090")))

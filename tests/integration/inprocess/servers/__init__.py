"""Applications the in-process tests run under real servers (gunicorn, uvicorn) or alone."""

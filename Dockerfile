# syntax=docker/dockerfile:1
# dbpulse image: `docker build -t dbpulse:0.1.0 .`
#   docker run --rm -p 9189:9189 -e DBPULSE_DSN=postgresql://dbpulse:...@db:5432/postgres dbpulse:0.1.0
# The builder stage runs deploy/docker/install.sh, which tests/integration/test_docker_install.py
# also runs, so the recipe is tested even where no Docker engine is available.

FROM python:3.11-slim AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY deploy/docker/install.sh /usr/local/bin/dbpulse-install
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN sh /usr/local/bin/dbpulse-install /src /opt/venv

FROM python:3.11-slim
LABEL org.opencontainers.image.title="dbpulse" \
      org.opencontainers.image.description="Prometheus exporter and observability sidecar for PostgreSQL-backed SQLAlchemy services" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DBPULSE_LISTEN=0.0.0.0:9189
RUN groupadd --system --gid 10001 dbpulse \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin dbpulse
COPY --from=builder /opt/venv /opt/venv
COPY config/dbpulse.example.yaml /etc/dbpulse/dbpulse.example.yaml
USER 10001:10001
EXPOSE 9189
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('DBPULSE_LISTEN', ':9189').rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=3)"]
ENTRYPOINT ["dbpulse"]
CMD ["sidecar"]

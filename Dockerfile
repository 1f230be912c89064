# The gateway image: the product only, run as a non-root user, with nothing secret inside.
# Configuration, keys and certificates are mounted (read-only) and secrets come from files:
#   /etc/asw-gateway/gateway.toml   the configuration (ASW_CONFIG to use another path)
#   /etc/asw-gateway/pki/<CC>/...   trust anchors, CRLs, signer and gateway keys (pki.*_dir)
#   /run/secrets/...                ASW_AMQP__URL_FILE, ASW_AMQP__URLS_FILE, ASW_JOURNAL__URL_FILE,
#                                   ASW_PARTIES__<CC>__API_KEY_SHA256_FILE, ... (settings.py)
#   /var/lib/asw-gateway            the gateway's own data (a SQLite journal, drop folders): a volume
# deploy/compose.yaml runs it with a RabbitMQ cluster, PostgreSQL and simulated NSWs;
# docs/operations.md is the runbook.
FROM python:3.11-slim-bookworm AS product

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --uid 10001 --user-group --no-create-home \
      --home-dir /var/lib/asw-gateway asw \
 && mkdir -p /var/lib/asw-gateway /etc/asw-gateway \
 && chown asw:asw /var/lib/asw-gateway && chmod 0700 /var/lib/asw-gateway
WORKDIR /opt/asw-gateway

COPY pyproject.toml README.md ./
COPY requirements/runtime.lock ./requirements/
RUN python -m pip install --no-cache-dir --require-hashes -r requirements/runtime.lock
COPY gateway ./gateway
COPY adapters ./adapters
RUN python -m pip install --no-cache-dir --no-deps .
COPY xsd ./xsd
# An example configuration; mount the real one over /etc/asw-gateway/gateway.toml.
COPY deploy/gateway.toml /etc/asw-gateway/gateway.toml

# Callers authenticate (API keys or client certificates); unauthenticated mode is refused on
# 0.0.0.0. Start-up checks the broker, the journal, the port, folders and keys, and exits
# non-zero with one message naming every problem (the orchestrator's restart policy retries).
ENV ASW_CONFIG=/etc/asw-gateway/gateway.toml \
    ASW_HTTP__HOST=0.0.0.0 \
    ASW_HTTP__AUTH=api-key \
    ASW_HTTP__PORT=8080 \
    ASW_LOG__FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/var/lib/asw-gateway/metrics
USER asw:asw
VOLUME ["/var/lib/asw-gateway"]
EXPOSE 8080
# Healthy = ready: /readyz is the supervisor's verdict over every worker (broker connected and
# not blocked, journal writable, not draining). /healthz is liveness only.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('ASW_HTTP__PORT', '8080'), timeout=2).status != 200)"]
CMD ["sh", "-c", "exec asw-gateway serve --config \"$ASW_CONFIG\""]

# Testers' image: the product plus asw-toolkit (simulated NSWs, send, the development CA), for
# deploy/compose.yaml's simulated NSWs and trials; never deployed to production.
FROM product AS toolkit
USER root
COPY toolkit ./toolkit
RUN python -m pip install --no-cache-dir --no-deps ./toolkit
USER asw:asw
CMD ["asw-toolkit", "--help"]

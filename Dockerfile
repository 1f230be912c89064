# The gateway image: the same commands `make run` uses, without the demo submission.
# RabbitMQ runs beside it (set ASW_AMQP__URL); drop folders live under /srv/asw (a volume).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN useradd --system --create-home --home-dir /srv/asw asw
WORKDIR /opt/asw-gateway

COPY pyproject.toml README.md ./
COPY requirements/runtime.lock ./requirements/
RUN python -m pip install --no-cache-dir --require-hashes -r requirements/runtime.lock
COPY gateway ./gateway
COPY adapters ./adapters
RUN python -m pip install --no-cache-dir --no-deps .

COPY xsd ./xsd
COPY config ./config
COPY samples ./samples
# The journal (var/), drop folders (var/nsw/) and the development PKI (certs/dev) are written
# here at run time; mount volumes over var/ and certs/ to keep them.
RUN mkdir -p var certs && chown -R asw /opt/asw-gateway && chmod 0700 var

# Callers authenticate with API keys: give each party's key digest, for instance
# ASW_PARTIES__SG__API_KEY_SHA256=<sha256 hex of SG's key>. Unauthenticated mode is refused on 0.0.0.0.
ENV ASW_HTTP__HOST=0.0.0.0 \
    ASW_HTTP__AUTH=api-key \
    ASW_AMQP__URL=amqp://guest:guest@rabbitmq:5672/ \
    ASW_LOG__FORMAT=json
USER asw
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"
# The image holds the product only (no tester tools, no development CA): mount the trust
# directory at certs/dev. For development, make one on the host with `asw-toolkit pki init certs/dev`.
CMD ["sh", "-c", "[ -d certs/dev ] || { echo 'asw-gateway: no trust directory at /opt/asw-gateway/certs/dev; mount one (for development: asw-toolkit pki init certs/dev)' >&2; exit 2; }; exec asw-gateway serve --config config/gateway.toml"]

"""Who is calling: API keys and TLS client certificates, checked in one aiohttp middleware.

``http.auth`` chooses how callers prove who they are:

    none            development only, by explicit choice: nobody is asked; the caller is
                    unknown (``None``). Refused at start unless ``http.host`` is a loopback
                    address, and warned about at start.
    api-key (the default)
                    ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``; the SHA-256 of the
                    key must equal one of a party's ``api_key_sha256`` (compared in constant time)
    tls             a client certificate whose subject ``C`` is a configured party and which
                    chains to that country's CA (trust directory, CRLs and validity checked)
    api-key-or-tls  either; when both are presented they must name the same party

The party proved is stored on the request as ``request[CALLER]`` (its country code, or None in
``none`` mode); the whole answer, with how it was proved, as ``request[PRINCIPAL]``. Handlers
pass ``request[CALLER]`` to ``Submissions.submit(caller=...)``, and the core refuses a document
whose sender is another country with ``sender-not-allowed`` (403).

Paths:

- open to everyone: ``/healthz``, ``/readyz``, ``/docs``, ``/v1/openapi.json``, ``/console``
  and below;
- operator endpoints (``/v1/dead-letters*``, ``/v1/queues``, ``/v1/stats``, ``/v1/deadlines``,
  ``/metrics``, ``/v1/certificates``, ``/v1/partners``, ``/v1/audit``, ``/v1/operators``): an
  operator key,
  unless ``http.auth`` is ``none``: a named key from ``http.operator_keys_file`` (its role must
  allow the route, see ``gateway.operators.ROUTE_PERMISSIONS``; else ``403 role-forbidden``), or
  the one shared key of ``http.operator_api_key_sha256`` (role admin, name "operator");
- everything else: a party. An operator key is also accepted there for reading (GET, HEAD),
  with no party as caller.

A refusal is ``401 unauthenticated`` with a ``WWW-Authenticate`` header. API keys are never
logged: log lines carry the party and the first 12 hex digits of the key's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography import x509

from gateway.core.trust import TrustStore, country_of, fingerprint
from gateway.errors import RoleForbidden, SettingsError, SignatureProblem, Unauthenticated
from gateway.operators import OPEN, PARTY, VIEW, OperatorKeys, allows, permission_of
from gateway.problems import problem_response
from gateway.settings import AUTH_MODES, HttpSettings, Settings

log = structlog.get_logger("gateway.auth")

OPEN_PATHS = ("/healthz", "/readyz", "/docs", "/v1/openapi.json")
OPEN_PREFIXES = ("/console",)
OPERATOR_PATHS = (
    "/v1/queues",
    "/v1/stats",
    "/v1/certificates",
    "/v1/partners",
    "/v1/deadlines",
    "/metrics",
    "/v1/audit",
    "/v1/operators",
)
OPERATOR_PREFIXES = ("/v1/dead-letters",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FINGERPRINT_CHARS = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who the request proved to be.

    ``party`` is the country code of the calling party (None: unknown in ``none`` mode, or the
    operator). ``method`` is ``none``, ``api-key``, ``tls`` or ``operator-key``. ``key_id`` is
    the first hex digits of the key's SHA-256 or of the certificate's fingerprint: safe to log.
    """

    party: str | None
    operator: bool
    method: str
    key_id: str | None = None
    name: str | None = None
    """The operator's name (from the keys file; "operator" for the shared key)."""
    role: str | None = None
    """The operator's role (``gateway.operators.ROLES``); None for parties and ``none`` mode."""

    @property
    def who(self) -> str:
        """How the audit log names this caller."""
        if self.name is not None:
            return self.name
        if self.party is not None:
            return f"party {self.party}"
        return "anonymous (auth none)" if self.method == "none" else "unknown"


CALLER = web.RequestKey("caller", str)
"""The authenticated party's country code; absent when no party is known (use ``.get``)."""
PRINCIPAL = web.RequestKey("principal", Principal)
"""The full answer of the middleware, present on every request it let through."""

TrustSource = Callable[[], TrustStore | None]


def key_digest(key: str) -> str:
    """The SHA-256 hex of an API key, as ``api_key_sha256`` stores it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def caller_of(request: web.Request) -> str | None:
    """The authenticated party of ``request``, or None."""
    caller: str | None = request.get(CALLER, None)
    return caller


def presented_key(request: web.Request) -> str | None:
    """The API key in ``X-API-Key`` or ``Authorization: Bearer``, if any."""
    key = request.headers.get("X-API-Key", "").strip()
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def peer_certificate(request: web.Request) -> x509.Certificate | None:
    """The client certificate the TLS layer received (and verified), if any."""
    transport = request.transport
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    return x509.load_der_x509_certificate(der)


def path_kind(path: str) -> str:
    """``open``, ``operator`` or ``party``: what a path asks of its caller."""
    if path in OPEN_PATHS or any(path == p or path.startswith(p + "/") for p in OPEN_PREFIXES):
        return "open"
    if path in OPERATOR_PATHS or any(
        path.startswith(p) or path == p.rstrip("/") for p in OPERATOR_PREFIXES
    ):
        return "operator"
    return "party"


class Authenticator:
    """Decides who a request comes from; pure apart from the trust source and the clock."""

    def __init__(
        self,
        settings: Settings,
        *,
        trust: TrustSource | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mode = settings.http.auth
        if self.mode not in AUTH_MODES:
            raise SettingsError([f"http.auth: must be one of {list(AUTH_MODES)}"])
        self._keys: tuple[tuple[str, str], ...] = tuple(
            (digest, country)
            for country, party in sorted(settings.parties.items())
            for digest in party.api_key_sha256
        )
        self._operator_digest = settings.http.operator_api_key_sha256.lower()
        self.operator_keys = OperatorKeys(settings.http.operator_keys_file)
        self._parties = frozenset(settings.parties)
        self._trust = trust
        self._clock = clock
        self.accepts_keys = self.mode in ("api-key", "api-key-or-tls")
        self.accepts_tls = self.mode in ("tls", "api-key-or-tls")

    def _match_key(self, key: str) -> tuple[str | None, Principal | None, str]:
        """(party, operator principal, key id) for a presented key; every digest is compared."""
        digest = key_digest(key)
        party: str | None = None
        for stored, country in self._keys:
            if hmac.compare_digest(digest, stored):
                party = country
        operator: Principal | None = None
        if self._operator_digest and hmac.compare_digest(digest, self._operator_digest):
            operator = Principal(
                party=None,
                operator=True,
                method="operator-key",
                key_id=digest[:FINGERPRINT_CHARS],
                name="operator",
                role="admin",
            )
        named = self.operator_keys.match(key)
        if named is not None:
            operator = Principal(
                party=None,
                operator=True,
                method="operator-key",
                key_id=named.key_id,
                name=named.name,
                role=named.role,
            )
        return party, operator, digest[:FINGERPRINT_CHARS]

    def authorize(self, principal: Principal, *, method: str, template: str | None) -> None:
        """Raise ``RoleForbidden`` when an operator's role does not allow the route.

        ``template`` is the matched route's template (None when nothing matched: the router
        answers 404 itself). Parties are judged by the handlers; ``none`` mode allows all.
        """
        if template is None or principal.method != "operator-key":
            return
        permission = permission_of(method, template)
        if permission is None or permission == OPEN:
            return
        if permission == PARTY:
            permission = VIEW
        if not allows(principal.role, permission):
            raise RoleForbidden(
                f"{principal.name} has the role {principal.role}, which may not "
                f"{method} {template} (it needs the permission {permission!r})."
            )

    def _certificate_party(self, cert: x509.Certificate) -> str:
        """The party a client certificate proves, or raise ``Unauthenticated``."""
        country = country_of(cert)
        subject = cert.subject.rfc4514_string()
        if country is None or country not in self._parties:
            raise Unauthenticated(
                f"The client certificate {subject} names no party of this gateway "
                f"(subject C={country!r})."
            )
        store = self._trust() if self._trust is not None else None
        if store is None:
            raise Unauthenticated(
                "Client certificates cannot be checked: this gateway has no trust store."
            )
        try:
            store.check_client(cert, [], country=country, now=self._clock())
        except SignatureProblem as exc:
            raise Unauthenticated(f"The client certificate is not accepted: {exc.detail}") from exc
        return country

    def authenticate(
        self, *, path: str, method: str, key: str | None, cert: x509.Certificate | None
    ) -> Principal:
        """Who the caller is for ``path``; raises ``Unauthenticated`` when not good enough."""
        kind = path_kind(path)
        if self.mode == "none":
            return Principal(party=None, operator=True, method="none")
        if kind == "open":
            return Principal(party=None, operator=False, method="none")
        key_party: str | None = None
        operator: Principal | None = None
        key_id: str | None = None
        if key is not None:
            key_party, operator, key_id = self._match_key(key)
            if key_party is None and operator is None:
                raise Unauthenticated("The API key is not known to this gateway.")
        if kind == "operator" or (operator is not None and key_party is None):
            return self._operator(path, method, kind, operator=operator)
        return self._party(key_party, key_id, cert)

    def _operator(
        self, path: str, method: str, kind: str, *, operator: Principal | None
    ) -> Principal:
        if operator is None:
            configured = (
                ""
                if self._operator_digest or self.operator_keys.configured
                else " (none is configured on this gateway)"
            )
            raise Unauthenticated(
                f"{path} is an operator endpoint: send an operator's API key{configured}."
            )
        if kind != "operator" and method not in SAFE_METHODS:
            raise Unauthenticated(
                "The operator key can only read here; send documents with a party's key."
            )
        return operator

    def _party(
        self, key_party: str | None, key_id: str | None, cert: x509.Certificate | None
    ) -> Principal:
        cert_party: str | None = None
        cert_id: str | None = None
        if cert is not None and self.accepts_tls:
            cert_party = self._certificate_party(cert)
            cert_id = fingerprint(cert)[:FINGERPRINT_CHARS]
        if key_party is not None and not self.accepts_keys:
            raise Unauthenticated("This gateway accepts client certificates, not API keys.")
        if key_party is not None and cert_party is not None and key_party != cert_party:
            raise Unauthenticated(
                f"The API key belongs to {key_party} but the client certificate to {cert_party}."
            )
        if key_party is not None:
            return Principal(party=key_party, operator=False, method="api-key", key_id=key_id)
        if cert_party is not None:
            return Principal(party=cert_party, operator=False, method="tls", key_id=cert_id)
        wanted = {
            "api-key": "an API key (X-API-Key or Authorization: Bearer)",
            "tls": "a TLS client certificate of your country",
            "api-key-or-tls": "an API key or a TLS client certificate",
        }[self.mode]
        raise Unauthenticated(f"This gateway needs {wanted}.")


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_exposure(http: HttpSettings) -> None:
    """Refuse ``http.auth = "none"`` on any address but loopback (``SettingsError``)."""
    if http.auth == "none" and not is_loopback(http.host):
        raise SettingsError(
            [
                f'http.auth = "none" lets anyone send as any country, so it is only allowed on '
                f"a loopback address (127.0.0.1, ::1), not on {http.host!r}; configure "
                f'http.auth = "api-key" with each party\'s api_key_sha256 (or "tls")'
            ]
        )


def default_trust(settings: Settings) -> TrustSource | None:
    """A reloading trust store over ``pki.trust_dir``, or None when there is none."""
    # Imported here: the loader reads files, and only TLS modes need it.
    from gateway.trust_loader import open_trust  # noqa: PLC0415

    store = open_trust(settings, required=False)
    return store.current if store is not None else None


def auth_middleware(
    settings: Settings,
    *,
    trust: TrustSource | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Middleware:
    """The middleware enforcing ``http.auth``; put it right after the errors middleware.

    ``trust`` gives the current trust store for checking client certificates (default: one
    read from ``pki.trust_dir``, reloaded when files change). Raises ``SettingsError`` when a
    TLS mode is chosen without ``http.tls_cert``, since then no client certificate can arrive.
    """
    http = settings.http
    check_auth_exposure(http)
    if http.auth == "none":
        log.warning(
            "auth_disabled",
            host=http.host,
            detail="http.auth is none: callers are not authenticated (development only)",
        )
    if http.auth in ("tls", "api-key-or-tls") and not http.tls_cert:
        raise SettingsError(
            [f"http.auth = {http.auth!r} needs http.tls_cert and http.tls_key (HTTPS)"]
        )
    if http.auth in ("tls", "api-key-or-tls") and trust is None:
        trust = default_trust(settings)
    authenticator = Authenticator(settings, trust=trust, clock=clock)
    if authenticator.accepts_keys and not any(p.api_key_sha256 for p in settings.parties.values()):
        log.warning("auth_no_party_keys", mode=http.auth)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        key = presented_key(request)
        try:
            cert = peer_certificate(request) if authenticator.accepts_tls else None
            principal = authenticator.authenticate(
                path=request.path, method=request.method, key=key, cert=cert
            )
        except Unauthenticated as exc:
            log.warning(
                "caller_unauthenticated",
                path=request.path,
                method=request.method,
                remote=request.remote,
                key_id=key_digest(key)[:FINGERPRINT_CHARS] if key else None,
                detail=exc.detail,
            )
            return _refusal(exc, request, settings)
        except ValueError as exc:  # a certificate the TLS layer passed but cryptography cannot read
            error = Unauthenticated(f"The client certificate cannot be read: {exc}")
            return _refusal(error, request, settings)
        try:
            authenticator.authorize(
                principal, method=request.method, template=route_template(request)
            )
        except RoleForbidden as exc:
            log.warning(
                "operator_forbidden",
                path=request.path,
                method=request.method,
                operator=principal.name,
                role=principal.role,
                key_id=principal.key_id,
            )
            return problem_response(
                exc, base_uri=settings.http.problem_base_uri, instance=request.path
            )
        request[PRINCIPAL] = principal
        if principal.party is not None:
            request[CALLER] = principal.party
            structlog.contextvars.bind_contextvars(
                caller=principal.party, auth=principal.method, key_id=principal.key_id
            )
        elif principal.operator and principal.method == "operator-key":
            structlog.contextvars.bind_contextvars(
                caller="operator",
                operator=principal.name,
                role=principal.role,
                auth=principal.method,
                key_id=principal.key_id,
            )
        return await handler(request)

    return authenticate


def route_template(request: web.Request) -> str | None:
    """The template of the route that matched (``/v1/messages/{message_id}``), or None."""
    info = request.match_info
    if info.http_exception is not None:
        return None
    resource = info.route.resource
    return None if resource is None else resource.canonical


def _refusal(error: Unauthenticated, request: web.Request, settings: Settings) -> web.Response:
    """The 401 problem answer, with a ``WWW-Authenticate`` challenge for the mode."""
    response = problem_response(
        error, base_uri=settings.http.problem_base_uri, instance=request.path
    )
    response.headers["WWW-Authenticate"] = challenge_header(settings.http.auth)
    return response


def challenge_header(mode: str) -> str:
    """The ``WWW-Authenticate`` value for a 401 in ``mode``."""
    if mode == "tls":
        return 'Mutual realm="asw-gateway"'
    return 'Bearer realm="asw-gateway"'


def server_ssl_context(
    http: HttpSettings, *, trust_dir: Path | None = None
) -> ssl.SSLContext | None:
    """The TLS context for serving HTTPS, or None when ``http.tls_cert`` is not set.

    Client certificates are asked for (``CERT_OPTIONAL``) so that API-key callers without one
    still get through, and verified against ``http.tls_client_ca`` (or, when that is empty,
    every ``<trust_dir>/<CC>/ca*.pem``); a certificate that does not verify fails the handshake.
    The middleware then checks the country and the CRLs.
    """
    if not http.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(http.tls_cert, http.tls_key or None)
        cas = _client_ca_files(http, trust_dir)
        for ca in cas:
            context.load_verify_locations(cafile=str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError([f"http.tls_*: cannot load the TLS files: {exc}"]) from exc
    if cas:
        context.verify_mode = ssl.CERT_OPTIONAL
    elif http.auth in ("tls", "api-key-or-tls"):
        raise SettingsError(
            ["http.tls_client_ca: needed to verify client certificates (or a pki.trust_dir)"]
        )
    return context


def _client_ca_files(http: HttpSettings, trust_dir: Path | None) -> Sequence[Path]:
    if http.tls_client_ca:
        return [Path(http.tls_client_ca)]
    if trust_dir is None or not trust_dir.is_dir():
        return []
    return sorted(trust_dir.glob("[A-Z][A-Z]/ca*.pem"))

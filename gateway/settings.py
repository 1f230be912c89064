"""One frozen, typed settings tree, read from TOML with ``ASW_*`` environment overrides.

``load_settings(path, environ)`` is the only place that reads configuration; the environment is
passed in, never read behind the caller's back. Overrides use double underscores between key
levels: ``ASW_HTTP__PORT=9000``, ``ASW_AMQP__URL=amqp://...``,
``ASW_PARTIES__TH__OPTIONS__DIRECTORY=/srv/th``. A secret can come from a file instead
(``ASW_AMQP__URL_FILE=/run/secrets/amqp_url``, see ``read_secret_files``). Every problem found
is collected and raised as one ``SettingsError``, so a bad configuration is fixed in one round.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from gateway.core.envelope import MEMBER_STATES
from gateway.errors import SettingsError

DEFAULT_CONFIG = Path("config/gateway.toml")
ENV_PREFIX = "ASW_"

# The choices a setting may take. A setting typed with one of these is checked at load against
# the type's values (``_choices``); a wrong value is a SettingsError naming the key and them.
PinCpus = Literal["auto", "on", "off"]
"""Pin each worker process to one CPU: ``auto`` only with one worker per CPU, ``on``, ``off``."""
Scheduler = Literal["batch", "normal"]
"""Linux scheduling policy of the gateway processes."""
AuthMode = Literal["api-key", "tls", "api-key-or-tls", "none"]
"""How callers prove who they are; ``none`` only by choice, and only on a loopback address."""
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["auto", "json", "console"]
"""``auto``: console on a terminal, JSON otherwise."""
AdapterKind = Literal["drop-folder", "http-push", "pull-inbox", "remote-gateway"]
"""How a national single window is reached."""
RevocationMode = Literal["hard-fail", "soft-fail"]
"""No current CRL for a party: refuse its documents (hard-fail) or warn (soft-fail)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """Who this gateway is."""

    name: str = "asw-gateway"
    workers: int = 1
    pin_cpus: PinCpus = "auto"
    scheduler: Scheduler = "batch"
    # On SIGTERM: how long hand-overs in flight may take to finish (0 = the largest adapter
    # timeout plus a margin, see gateway.app.drain_seconds); new work is refused meanwhile.
    drain_seconds: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """The HTTP API listener."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 8 * 1024 * 1024
    problem_base_uri: str = "https://asw-gateway.dev/problems/"
    offload_bytes: int = 64 * 1024
    auth: AuthMode = "api-key"  # ``none`` on a non-loopback address is refused at start
    tls_cert: str = ""  # serve HTTPS with this certificate (PEM) and key
    tls_key: str = ""
    tls_client_ca: str = ""  # CA bundle that client certificates must chain to (mTLS)
    operator_api_key_sha256: str = ""  # SHA-256 hex of one shared operators' key (role admin)
    operator_keys_file: str = ""  # named operator keys with roles (asw-gateway keys add)
    max_connections: int = 512  # open connections per worker; more get 503 (/healthz still answers)
    header_timeout_seconds: float = 15.0  # a connection that sends no complete request is closed
    body_timeout_seconds: float = 60.0  # a body that has not fully arrived gets 408
    per_caller_concurrency: int = 16  # requests one caller may have in work at once; more get 503
    request_threads: int = 2  # threads per worker for heavy work on submitted documents
    request_queue: int = 32  # heavy jobs waiting for those threads; more get 503


@dataclass(frozen=True, slots=True, kw_only=True)
class AmqpSettings:
    """The RabbitMQ connection and topology."""

    url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # Every node of a RabbitMQ cluster; when given, the gateway connects to the first that
    # answers and, when that node goes away, to another one by itself. Empty = just ``url``.
    urls: tuple[str, ...] = ()
    prefix: str = "asw"
    prefetch: int = 64
    delivery_limit: int = 10  # the broker's own backstop (quorum x-delivery-limit)
    poison_after: int = 5  # interrupted deliveries before the worker parks a message itself
    # A publish not confirmed within this is refused with 503: well under a client's own timeout.
    confirm_timeout_seconds: float = 5.0
    reconnect_seconds: float = 1.0
    retry_schedule_seconds: tuple[float, ...] = (5.0, 30.0, 120.0, 600.0, 3600.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentSettings:
    """Where schemas live and how documents are bounded."""

    xsd_dir: str = ""  # "" = the schemas shipped with the gateway (gateway.schema_files)
    max_depth: int = 64
    parties_file: str = ""  # the parties plan (TOML); "" = gateway/data/parties.toml
    mra_file: str = ""  # the ASEAN AEO MRA plan (TOML); "" = gateway/data/aeo.toml
    # Answer a CE lookup / AEO status query from the register kept here (where one is kept and
    # the asked country's gateway key is held); false: always forward it to the asked side.
    answer_register_queries: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class PkiSettings:
    """Where trust anchors and signing keys live, and what the gateway insists on."""

    trust_dir: str = "certs/dev"  # <dir>/<CC>/ca*.pem and crl*.pem per member state
    keys_dir: str = "certs/dev"  # <dir>/<CC>/signer.key|pem for parties the gateway signs for
    require_signature: bool = True
    verify_on_delivery: bool = True
    receipts: bool = True  # sign a delivery receipt with the receiving gateway key (<CC>/gateway.*)
    trust_check_seconds: float = 5.0  # how often CA and CRL files are checked for changes


MIN_RETENTION_DAYS = 1096
"""Three years: ATIGA's Operational Certification Procedures keep records at least this long."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalSettings:
    """The message journal: every message, every state change, payloads for replay and audit."""

    url: str = "sqlite:var/journal.db"
    retention_days: int = 1100  # ATIGA OCP rules 17 and 31: records kept at least 3 years
    allow_short_retention: bool = False  # retention_days below 1096 (3 years) only with this
    archive_dir: str = "var/archive"  # retention writes its compressed bundles here
    retention_check_seconds: float = 3600.0  # how often the retention job runs (0: never)
    refusal_payload_max_bytes: int = 262_144  # refused documents kept up to this; larger: digest
    lease_seconds: float = 300.0
    sweep_seconds: float = 30.0  # unconfirmed submissions older than this are published again
    op_timeout_seconds: float = 5.0  # every journal operation fails (503) past this, never hangs


@dataclass(frozen=True, slots=True, kw_only=True)
class LogSettings:
    """Logging output."""

    level: LogLevel = "info"
    format: LogFormat = "auto"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartySettings:
    """A national single window this gateway delivers to, and how."""

    country: str
    adapter: AdapterKind
    options: Mapping[str, str] = field(default_factory=dict)
    sign_on_behalf: bool = False  # the gateway signs this party's documents after validation
    revocation: RevocationMode = "hard-fail"
    api_key_sha256: tuple[str, ...] = ()  # SHA-256 hex of this party's API keys (two in rollover)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The whole configuration of one gateway process."""

    node: NodeSettings = field(default_factory=NodeSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    amqp: AmqpSettings = field(default_factory=AmqpSettings)
    documents: DocumentSettings = field(default_factory=DocumentSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    pki: PkiSettings = field(default_factory=PkiSettings)
    log: LogSettings = field(default_factory=LogSettings)
    parties: Mapping[str, PartySettings] = field(default_factory=dict)


_SECTIONS: dict[str, type[Any]] = {
    "node": NodeSettings,
    "http": HttpSettings,
    "amqp": AmqpSettings,
    "documents": DocumentSettings,
    "journal": JournalSettings,
    "pki": PkiSettings,
    "log": LogSettings,
}
AUTH_MODES: tuple[AuthMode, ...] = get_args(AuthMode)


def _choices(cls: type[Any]) -> dict[str, tuple[str, ...]]:
    """The allowed values of each ``Literal``-typed setting of a section, read from its type."""
    return {
        name: get_args(hint)
        for name, hint in get_type_hints(cls).items()
        if get_origin(hint) is Literal
    }


_SECTION_CHOICES = {name: _choices(cls) for name, cls in _SECTIONS.items()}


_POSITIVE = {
    ("node", "workers"),
    ("http", "port"),
    ("http", "max_body_bytes"),
    ("http", "max_connections"),
    ("http", "header_timeout_seconds"),
    ("http", "body_timeout_seconds"),
    ("http", "per_caller_concurrency"),
    ("http", "request_threads"),
    ("http", "request_queue"),
    ("amqp", "prefetch"),
    ("amqp", "delivery_limit"),
    ("amqp", "poison_after"),
    ("documents", "max_depth"),
    ("journal", "retention_days"),
    ("journal", "lease_seconds"),
    ("journal", "sweep_seconds"),
    ("journal", "refusal_payload_max_bytes"),
    ("pki", "trust_check_seconds"),
}
_STRING_LISTS = {("amqp", "urls")}
KNOWN_ADAPTERS: tuple[AdapterKind, ...] = get_args(AdapterKind)
REVOCATION_MODES: tuple[RevocationMode, ...] = get_args(RevocationMode)


def _not_allowed(key: str, allowed: tuple[str, ...], got: object) -> str:
    """The one wording of a choice setting with a value outside its allowed ones."""
    return f"{key}: must be one of {', '.join(allowed)}; got {got!r}"


def _coerce(raw: str, like: Any, *, strings: bool = False) -> Any:
    if strings:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if isinstance(like, tuple):
        return tuple(float(part) for part in raw.split(",") if part.strip())
    if isinstance(like, bool):
        lowered = raw.strip().lower()
        if lowered not in {"true", "false", "1", "0", "yes", "no"}:
            raise ValueError(f"expected true or false, got {raw!r}")
        return lowered in {"true", "1", "yes"}
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    return raw


def _apply_environment(
    data: dict[str, Any], environ: Mapping[str, str], problems: list[str]
) -> None:
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if path[0] == "parties" and len(path) >= 3:
            path[1] = path[1].upper()
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"{name}: {'.'.join(path)} is not a table")
                break
            node = child
        else:
            node[path[-1]] = raw


def _build_section(name: str, raw: Any, problems: list[str]) -> Any:
    cls = _SECTIONS[name]
    defaults = cls()
    if not isinstance(raw, dict):
        problems.append(f"[{name}] must be a table")
        return defaults
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if not hasattr(defaults, key):
            problems.append(f"{name}.{key}: unknown setting")
            continue
        like = getattr(defaults, key)
        strings = (name, key) in _STRING_LISTS
        try:
            coerced = _coerce(value, like, strings=strings) if isinstance(value, str) else value
        except ValueError as exc:
            problems.append(f"{name}.{key}: {exc}")
            continue
        if strings:
            if not isinstance(coerced, list | tuple) or not all(
                isinstance(v, str) and v.strip() for v in coerced
            ):
                problems.append(f"{name}.{key}: expected a list of non-empty strings")
                continue
            values[key] = tuple(v.strip() for v in coerced)
            continue
        if isinstance(like, tuple):
            if not isinstance(coerced, list | tuple) or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in coerced
            ):
                problems.append(f"{name}.{key}: expected a list of positive numbers")
                continue
            values[key] = tuple(float(v) for v in coerced)
            continue
        if isinstance(like, bool) != isinstance(coerced, bool) or (
            isinstance(like, int | float) and not isinstance(coerced, int | float)
        ):
            problems.append(f"{name}.{key}: expected {type(like).__name__}, got {coerced!r}")
            continue
        if isinstance(like, float):
            coerced = float(coerced)
        if (name, key) in _POSITIVE and coerced <= 0:
            problems.append(f"{name}.{key}: must be greater than 0, got {coerced!r}")
        allowed = _SECTION_CHOICES[name].get(key)
        if allowed is not None and coerced not in allowed:
            problems.append(_not_allowed(f"{name}.{key}", allowed, coerced))
        values[key] = coerced
    return cls(**values)


def _build_parties(raw: Any, problems: list[str]) -> dict[str, PartySettings]:
    parties: dict[str, PartySettings] = {}
    if not isinstance(raw, dict):
        problems.append("[parties] must be a table")
        return parties
    for country, body in sorted(raw.items()):
        where = f"parties.{country}"
        if country not in MEMBER_STATES:
            problems.append(f"{where}: {country!r} is not an ASEAN member state code")
            continue
        if not isinstance(body, dict):
            problems.append(f"{where}: must be a table")
            continue
        adapter = body.get("adapter")
        if adapter not in KNOWN_ADAPTERS:
            problems.append(_not_allowed(f"{where}.adapter", KNOWN_ADAPTERS, adapter))
            continue
        options = body.get("options", {})
        if not isinstance(options, dict):
            problems.append(f"{where}.options: must be a table")
            continue
        unknown = set(body) - {
            "adapter",
            "options",
            "sign_on_behalf",
            "revocation",
            "api_key_sha256",
        }
        problems.extend(f"{where}.{key}: unknown setting" for key in sorted(unknown))
        sign_on_behalf = body.get("sign_on_behalf", False)
        if isinstance(sign_on_behalf, str):
            sign_on_behalf = sign_on_behalf.lower() in {"true", "1", "yes"}
        if not isinstance(sign_on_behalf, bool):
            problems.append(f"{where}.sign_on_behalf: expected true or false")
            continue
        keys = body.get("api_key_sha256", [])
        if isinstance(keys, str):
            keys = [k for k in keys.split(",") if k.strip()]
        if not isinstance(keys, list) or not all(
            isinstance(k, str) and len(k) == 64 and all(c in "0123456789abcdef" for c in k.lower())
            for k in keys
        ):
            problems.append(f"{where}.api_key_sha256: expected SHA-256 hex digests")
            continue
        revocation = body.get("revocation", "hard-fail")
        if revocation not in REVOCATION_MODES:
            problems.append(_not_allowed(f"{where}.revocation", REVOCATION_MODES, revocation))
            continue
        parties[country] = PartySettings(
            country=country,
            adapter=adapter,
            options={str(k): str(v) for k, v in options.items()},
            sign_on_behalf=sign_on_behalf,
            revocation=revocation,
            api_key_sha256=tuple(k.lower() for k in keys),
        )
    return parties


FILE_SUFFIX = "_FILE"  # ASW_<KEY>_FILE: the value of ASW_<KEY> is in that file
PARTY_SECRET_KEYS = frozenset({"api_key_sha256"})


def _names_setting(path: list[str]) -> bool:
    """Whether ``path`` (lower-case key levels) is a setting a secret file may give."""
    if len(path) == 2 and path[0] in _SECTIONS:
        return hasattr(_SECTIONS[path[0]](), path[1])
    return len(path) == 3 and path[0] == "parties" and path[2] in PARTY_SECRET_KEYS


def read_secret_files(environ: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """``environ`` with each ``ASW_<KEY>_FILE=<path>`` replaced by ``ASW_<KEY>=<file content>``.

    The container convention for secrets (Docker and Kubernetes secrets are files): for
    instance ``ASW_AMQP__URL_FILE=/run/secrets/amqp_url``, ``ASW_JOURNAL__URL_FILE``,
    ``ASW_PARTIES__SG__API_KEY_SHA256_FILE`` or ``ASW_HTTP__OPERATOR_API_KEY_SHA256_FILE``. The
    content's surrounding white space (a final newline) is dropped. Only names whose key,
    without ``_FILE``, is a setting are read this way (``ASW_DOCUMENTS__PARTIES_FILE`` stays the
    setting ``documents.parties_file``); giving both the value and its file is a problem.
    """
    result = dict(environ)
    for name, path in sorted(environ.items()):
        if not (name.startswith(ENV_PREFIX) and name.endswith(FILE_SUFFIX)):
            continue
        key = name.removesuffix(FILE_SUFFIX)
        levels = [part.lower() for part in key[len(ENV_PREFIX) :].split("__")]
        full = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not _names_setting(levels) or _names_setting(full):
            continue
        del result[name]
        if key in environ:
            problems.append(f"{name}: {key} is set as well; give the value or its file, not both")
            continue
        try:
            result[key] = Path(path).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            problems.append(f"{name}: cannot read the secret file {path} ({reason})")
    return result


def journal_url(settings: JournalSettings) -> str:
    """The journal URL with a relative SQLite path (``sqlite:var/j.db``) made absolute."""
    url = settings.url
    if url.startswith("sqlite:") and not url.startswith("sqlite://"):
        return "sqlite://" + str(Path(url.removeprefix("sqlite:")).resolve())
    return url


def load_settings(path: Path | None, environ: Mapping[str, str]) -> Settings:
    """Read ``path`` (TOML), apply ``ASW_*`` overrides from ``environ``, and check everything."""
    problems: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            problems.append(f"{path}: configuration file not found")
        except tomllib.TOMLDecodeError as exc:
            problems.append(f"{path}: not valid TOML: {exc}")
    _apply_environment(data, read_secret_files(environ, problems), problems)
    unknown = set(data) - set(_SECTIONS) - {"parties"}
    problems.extend(f"[{name}]: unknown section" for name in sorted(unknown))
    sections = {name: _build_section(name, data.get(name, {}), problems) for name in _SECTIONS}
    parties = _build_parties(data.get("parties", {}), problems)
    journal = sections["journal"]
    if journal.retention_days < MIN_RETENTION_DAYS and not journal.allow_short_retention:
        problems.append(
            f"journal.retention_days: {journal.retention_days} is below {MIN_RETENTION_DAYS} "
            "days; the ATIGA Operational Certification Procedures require records for at least "
            "three years (set journal.allow_short_retention = true to override, e.g. in tests)"
        )
    if problems:
        raise SettingsError(problems)
    return Settings(parties=parties, **sections)
